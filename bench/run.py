"""Run every benchmark in order and print a summary of the figures.

    .venv/bin/python bench/run.py                 # everything (seeds 100k SQLite + 1M PostgreSQL)
    .venv/bin/python bench/run.py --skip-seed     # reuse the seeded databases
    .venv/bin/python bench/run.py --no-postgres   # SQLite only
    .venv/bin/python bench/run.py --only search   # one step: seed, search, patient_page,
                                                  # page_weight, patient_sign or lab_ingest

Databases: SQLite in /tmp/bench-sqlite (BENHAN_DATA_DIR), PostgreSQL database
benhan_bench on 127.0.0.1 (created, or dropped and re-created, by the seed step),
the page-weight server's small demo database in /tmp/bench-pages, the patient-signing
step's own in /tmp/bench-patient-sign (re-created each run), the lab-ingestion step's
own in /tmp/bench-lab-ingest and PostgreSQL bench_lab (re-created each run, the
database dropped after). Raw results go
to bench/results/ (gitignored); docs/benchmarks.md holds the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
import lab_ingest

SQLITE = {"BENHAN_DB": "sqlite", "BENHAN_DATA_DIR": common.DEFAULT_SQLITE_DIR}
POSTGRES = {
    "BENHAN_DB": "postgres",
    "BENHAN_DB_NAME": common.DEFAULT_PG_DB,
    "BENHAN_DB_HOST": "127.0.0.1",
    "BENHAN_DATA_DIR": common.DEFAULT_PG_DIR,
}


def step(name: str, script: str, args: list[str], env_extra: dict[str, str]) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENHAN_")}
    env.update(env_extra)
    argv = [sys.executable, str(common.BENCH_DIR / script), *args]
    shown = " ".join(f"{k}={v}" for k, v in env_extra.items())
    print(f"\n=== {name}: {shown} {' '.join(argv[1:])}", flush=True)
    t = time.perf_counter()
    r = subprocess.run(argv, env=env, cwd=common.ROOT, check=False)  # noqa: S603 - our scripts
    if r.returncode:
        sys.exit(f"{name} failed with exit code {r.returncode}")
    return time.perf_counter() - t


def load(name: str) -> dict | None:
    path = common.RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def summary() -> None:
    rows = []
    for db in ("sqlite", "postgres"):
        r = load(f"search-{db}")
        if r:
            o = r["app"]["overall"]
            rows.append([f"search() {db} {r['patients']:,} patients", "p50/p95/p99 ms",
                         f"{o['p50']:.1f} / {o['p95']:.1f} / {o['p99']:.1f}",
                         f"p95 <= {r['app']['target_ms']:.0f} ms",
                         "met" if r["app"]["met"] else "MISSED"])  # fmt: skip
            if "sanity" in r:
                s = r["sanity"]
                rows.append(["  same patients as the plain LIKE/OR rule", "queries",
                             f"{s['agree']}/{s['total']}", "all",
                             "met" if s["agree"] == s["total"] else "MISSED"])  # fmt: skip
            if "without_stats" in r:
                o = r["without_stats"]["overall"]
                rows.append(["  same, without planner statistics", "p50/p95/p99 ms",
                             f"{o['p50']:.1f} / {o['p95']:.1f} / {o['p99']:.1f}", "",
                             "met" if r["without_stats"]["met"] else "missed"])  # fmt: skip
    r = load("patient_page-sqlite")
    if r:
        for user, v in r["in_process"].items():
            a = v["all"]
            rows.append([f"patient page in-process ({user})", "p50/p95/p99 ms",
                         f"{a['p50']:.1f} / {a['p95']:.1f} / {a['p99']:.1f}", "p95 <= 50 ms",
                         "met" if a["p95"] <= r["target_ms"] else "MISSED"])  # fmt: skip
        if "http" in r:
            a = r["http"]["all"]
            rows.append(["patient page over HTTP", "p50/p95/p99 ms",
                         f"{a['p50']:.1f} / {a['p95']:.1f} / {a['p99']:.1f}", "p95 <= 50 ms",
                         "met" if a["p95"] <= r["target_ms"] else "MISSED"])  # fmt: skip
    r = load("page_weight")
    if r:
        for s in r["cold"]:
            kb = s["transferred_bytes"] / 1024
            ok = kb <= 60 and s["requests"] <= 6
            rows.append([f"page weight, cold: {s['page']}", "requests, KB",
                         f"{s['requests']}, {kb:.1f} KB", "<= 6, <= 60 KB",
                         "met" if ok else "MISSED"])  # fmt: skip
        for f in r["fragment"]:
            b = f["body_bytes"] + f["header_bytes"]
            rows.append([f"htmx fragment: {f['label']}", "bytes", f"{b:,}", "<= 5 KB",
                         "met" if b <= 5 * 1024 else "MISSED"])  # fmt: skip
    r = load("patient_sign")
    if r:
        w = r.get("page_weight")
        if w:
            for label, key in (
                ("without page images", "without_images"),
                ("with the first page image", "with_first_image"),
            ):
                s = w[key]
                kb = s["bytes"] / 1024
                rows.append([f"patient signing page, cold, {label}", "requests, KB",
                             f"{s['requests']}, {kb:.1f} KB", "<= 40 KB",
                             "met" if kb <= 40 else "MISSED"])  # fmt: skip
        i = r["page_image"]
        rows.append(["patient signing: page_image()", "median ms", f"{i['median_ms']:.1f}",
                     "", ""])  # fmt: skip
        for key in ("sign_page", "sign_field"):
            p = r[key]
            rows.append([f"do_patient_sign(), {p['placement']} placement", "median ms",
                         f"{p['median_ms']:.1f}", "", ""])  # fmt: skip
        for p in r["paper"]:
            per_page = p["sealed_bytes"] / p["pages"] / 1000
            photos = f"{p['pages']} photo" + ("s" if p["pages"] != 1 else "")
            rows.append([f"paper, {photos}: {p['label']}", "s, KB/page",
                         f"{p['median_s']:.1f} s, {per_page:.1f} KB", "<= 5 s, <= 150 KB",
                         "met" if p["max_s"] <= 5 and per_page <= 150 else "MISSED"])  # fmt: skip
    r = load("lab_ingest")
    for db in ("sqlite", "postgres"):
        x = (r or {}).get(db)
        if not x:
            continue
        for protocol, label in (("hl7", "HL7 ORU^R01"), ("astm", "ASTM")):
            for run in ("one", "parallel", "paced"):
                v = x.get(protocol, {}).get(run)
                if not v:
                    continue
                lat = v["latency_ms"]
                verdict = lab_ingest.verdict_for(protocol, run, v)
                how = (f", {v['offered_per_s']:.0f}/s offered" if v.get("offered_per_s")
                       else ", flat out" if run == "parallel" else "")  # fmt: skip
                rows.append([f"lab {label} end to end, {db}, {v['connections']} connection(s){how}",
                             "msg/s, p99 ms", f"{v['rate_per_s']:.0f}/s, p99 {lat['p99']:.1f}",
                             ">= 400/s, <= 10 ms" if verdict != "-" else "",
                             verdict if verdict != "-" else ""])  # fmt: skip
        s = x.get("sign")
        if s:
            rows.append([f"lab result signed -> ward's inbox query, {db}", "median / max ms",
                         f"{s['visible_median_ms']:.0f} / {s['visible_max_ms']:.0f}", "<= 1 s",
                         "met" if s["visible_max_ms"] <= 1000 else "MISSED"])  # fmt: skip
    common.print_table(["benchmark", "measure", "figure", "target", ""], rows, "Summary")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-seed", action="store_true")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--only",
        choices=["seed", "search", "patient_page", "page_weight", "patient_sign", "lab_ingest"],
    )
    parser.add_argument("--sqlite-patients", type=int, default=100_000)
    parser.add_argument("--postgres-patients", type=int, default=1_000_000)
    args = parser.parse_args()

    def want(name: str) -> bool:
        return args.only is None or args.only == name

    timings = {}
    if want("seed") and not args.skip_seed:
        timings["seed sqlite"] = step("seed SQLite", "seed_bulk.py",
                                      ["--patients", str(args.sqlite_patients), "--reset"],
                                      SQLITE)  # fmt: skip
        if not args.no_postgres:
            timings["seed postgres"] = step("seed PostgreSQL", "seed_bulk.py",
                                            ["--patients", str(args.postgres_patients),
                                             "--reset"], POSTGRES)  # fmt: skip
    if want("search"):
        timings["search sqlite"] = step("search SQLite", "search.py", ["--without-stats"], SQLITE)
        if not args.no_postgres:
            timings["search postgres"] = step("search PostgreSQL", "search.py", [], POSTGRES)
    if want("patient_page"):
        timings["patient page"] = step("patient page SQLite", "patient_page.py", [], SQLITE)
    if want("page_weight"):
        timings["page weight"] = step("page weight", "page_weight.py", ["--reset"], {})
    if want("patient_sign"):
        timings["patient signing"] = step("patient signing", "patient_sign.py", [], {})
    if want("lab_ingest"):
        timings["lab ingestion sqlite"] = step("lab ingestion SQLite", "lab_ingest.py", [], {})
        if not args.no_postgres:
            timings["lab ingestion postgres"] = step("lab ingestion PostgreSQL", "lab_ingest.py",
                                                     ["--postgres"], {})  # fmt: skip
    common.print_table(["step", "seconds"], [[k, round(v, 1)] for k, v in timings.items()],
                       "Run time")  # fmt: skip
    summary()


if __name__ == "__main__":
    main()
