"""Render benchmark: median time to render each form to PDF with Typst.

Target (issue 3): a 2-page form renders in <= 30 ms median after warm-up.

    .venv/bin/python bench/render.py [--runs 50]

Each template is rendered with its sample data (benhan/records/typst/samples.json);
the first render of a template (loading fonts, parsing templates) is reported
separately as "cold", then `--runs` renders are timed. Also times stamp_print_copy().
No database is needed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benhan.records import render as r


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    rows = []
    for name in r.TEMPLATES:
        data = r.sample(name)
        t0 = time.perf_counter()
        out = r.render(name, data)
        cold = (time.perf_counter() - t0) * 1000
        # Vary one value per run so no cached PDF could be reused.
        counter = iter(range(10**9))

        def once(name=name, data=data, counter=counter):
            data["record"] = dict(data["record"], version=next(counter))
            r.render(name, data)

        times = timed(once, args.runs)
        rows.append((name, out.pages, len(out.pdf), cold, statistics.median(times), max(times)))

    pdf = r.render("outpatient_record", r.sample("outpatient_record")).pdf
    r.stamp_print_copy(pdf, printed_at="25/11/2026 10:02", printed_by="Vũ Thị Mai")
    stamp = timed(
        lambda: r.stamp_print_copy(pdf, printed_at="25/11/2026 10:02", printed_by="Vũ Thị Mai"),
        args.runs,
    )

    head = ("template", "pages", "PDF KB", "cold ms", "median ms", "max ms")
    print("{:<20} {:>5} {:>7} {:>8} {:>10} {:>7}".format(*head))
    for name, pages, size, cold, med, worst in rows:
        print(f"{name:<20} {pages:>5} {size / 1024:>7.1f} {cold:>8.1f} {med:>10.2f} {worst:>7.1f}")
    med = statistics.median(stamp)
    print(f"{'stamp_print_copy':<20} {2:>5} {'':>7} {'':>8} {med:>10.2f} {max(stamp):>7.1f}")
    two_page = [row for row in rows if row[1] == 2]
    worst_two = max(row[4] for row in two_page) if two_page else float("nan")
    ok = worst_two <= 30
    verdict = "OK" if ok else "MISSED"
    print(f"2-page forms: slowest median {worst_two:.2f} ms (target <= 30 ms): {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
