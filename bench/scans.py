"""Scans benchmark: stored bytes per photographed A4 page, and the time for a 10-page upload.

Targets (issue 4): a legible A4 text page stored in <= 150 KB; a 10-page upload of phone
photos processed in <= 5 s on the 2-core server.

    .venv/bin/python bench/scans.py [--pages 10] [--runs 3] [--png-dir /tmp/scans-bench]

The input photos are generated (tests/scans/__init__.py): 12 MP (3000 x 4000) JPEGs of a
text page on a desk, unevenly lit, with sensor noise, EXIF orientation 6 and GPS, saved
at quality 92 like a phone (3-5 MB each). Two kinds of page: a full page of text
(~38 lines of 10 pt Vietnamese text, "dense") and a form (~25 lines, a signature and a
stamp). Each is converted with the default options in greyscale and colour, and the
10-page upload is timed through benhan.scans.process() (JPEG pages + img2pdf PDF) with
the default 2 worker threads and with 1. No database. One page of each mode is written
as PNG to --png-dir to look at.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import machine, print_table, progress, save_result
from PIL import Image

from benhan.scans import ScanOptions, image_to_page, process
from benhan.scans.processing import DEFAULT_QUALITY
from tests.scans import page_photo

TARGET_PAGE_KB = 150
TARGET_UPLOAD_S = 5.0
META = {
    "title": "Giấy cam kết chấp thuận phẫu thuật",
    "author": "Trung tâm Y tế huyện (bench)",
    "converted_by": "Trần Văn Bình",
    "converted_at": "2026-03-14T09:30:00+07:00",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--png-dir", default="/tmp/scans-bench")  # noqa: S108 - throwaway
    args = parser.parse_args()
    png_dir = Path(args.png_dir)
    png_dir.mkdir(parents=True, exist_ok=True)

    progress(f"generating {args.pages} dense and {args.pages} form photos, 12 MP")
    photos = {
        "dense": [page_photo(3000, 4000, orientation=6, seed=s) for s in range(args.pages)],
        "form": [
            page_photo(3000, 4000, orientation=6, seed=100 + s, lines=25) for s in range(args.pages)
        ],
    }
    sizes_in = [len(p) for kind in photos.values() for p in kind]

    rows, per_page = [], {}
    for kind, uploads in photos.items():
        for colour in (False, True):
            mode = "colour" if colour else "grey"
            opts = ScanOptions(colour=colour)
            out = [image_to_page(p, opts) for p in uploads]
            kb = [info["bytes"] / 1000 for _, info in out]
            per_page[f"{kind}-{mode}"] = kb
            rows.append(
                [
                    kind,
                    mode,
                    DEFAULT_QUALITY["RGB" if colour else "L"],
                    statistics.median(kb),
                    max(kb),
                    "met" if max(kb) <= TARGET_PAGE_KB else "NOT met",
                ]
            )
            jpeg = out[0][0]
            Image.open(io.BytesIO(jpeg)).save(png_dir / f"{kind}-{mode}.png")
    print_table(
        ["page", "mode", "JPEG q", "median KB/page", "max KB/page", "<= 150 KB"],
        rows,
        f"Stored bytes per A4 page (input: 12 MP JPEG, {min(sizes_in) / 1e6:.1f}-"
        f"{max(sizes_in) / 1e6:.1f} MB)",
    )

    timing_rows, timings = [], {}
    for kind in ("dense", "form"):
        uploads = photos[kind]
        for colour in (False, True):
            for workers in (2, 1):
                mode = "colour" if colour else "grey"
                samples = []
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    pdf, _ = process(uploads, ScanOptions(colour=colour), workers=workers, **META)
                    samples.append(time.perf_counter() - t0)
                timings[f"{kind}-{mode}-w{workers}"] = samples
                timing_rows.append(
                    [
                        kind,
                        mode,
                        workers,
                        statistics.median(samples),
                        max(samples),
                        len(pdf) / 1000,
                        "met" if max(samples) <= TARGET_UPLOAD_S else "NOT met",
                    ]
                )
    print_table(
        ["page", "mode", "threads", "median s", "max s", "PDF KB", "<= 5 s"],
        timing_rows,
        f"{args.pages}-page upload through process() ({args.runs} runs)",
    )
    m = machine()
    print(f"\nmachine: {m['cpu']}, {m['cores']} cores, load average {m['loadavg_1m']}")
    print(f"pages as PNG: {png_dir}")
    save_result(
        "scans",
        {
            "pages": args.pages,
            "runs": args.runs,
            "input_bytes": sizes_in,
            "page_kb": per_page,
            "upload_seconds": timings,
            "default_quality": DEFAULT_QUALITY,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
