"""Rebuild the fonts shipped for PDF rendering.

Source: Debian's ``fonts-liberation2`` package (Liberation Serif 2.x, SIL OFL 1.1,
metric-compatible with Times New Roman, which Vietnamese official forms use).

Liberation's licence reserves the font names "Liberation", "Tinos", "Arimo" and
"Cousine"; a subset is a Modified Version under the OFL, so the subset fonts are renamed
"Benh An Serif". The glyph outlines are unchanged.

Subset: Basic Latin, Latin-1, Latin Extended-A/B, combining diacritics, Latin Extended
Additional (all Vietnamese precomposed letters), general punctuation, the dong sign,
letter-like symbols (No.), arrows, a few math operators, box drawing and geometric
shapes. Layout features (kerning, mark positioning) are kept; hinting is dropped (PDF
viewers do not need it).

Run (needs fonttools and ``apt-get install fonts-liberation2``):

    .venv/bin/python benhan/records/fonts/make_fonts.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

SOURCE = Path("/usr/share/fonts/truetype/liberation2")
HERE = Path(__file__).resolve().parent
FAMILY = "Benh An Serif"
STYLES = {
    "Regular": "LiberationSerif-Regular.ttf",
    "Bold": "LiberationSerif-Bold.ttf",
    "Italic": "LiberationSerif-Italic.ttf",
    "Bold Italic": "LiberationSerif-BoldItalic.ttf",
}
UNICODES = [
    *range(0x0020, 0x007F),  # Basic Latin
    *range(0x00A0, 0x0250),  # Latin-1 supplement, Latin Extended-A and -B
    *range(0x0300, 0x0370),  # combining diacritical marks
    *range(0x1E00, 0x1F00),  # Latin Extended Additional (Vietnamese)
    *range(0x2000, 0x2070),  # general punctuation
    0x20AB,  # dong sign
    *range(0x2100, 0x2150),  # letter-like symbols
    *range(0x2190, 0x2200),  # arrows
    *range(0x2200, 0x2300),  # mathematical operators (kept if present: ≤ ≥ ± ×)
    *range(0x2500, 0x2600),  # box drawing, block elements, geometric shapes
]


def build(style: str, source: Path, target: Path) -> None:
    options = subset.Options()
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.hinting = False
    options.notdef_outline = True
    options.glyph_names = False
    font = TTFont(source)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=UNICODES)
    subsetter.subset(font)
    rename(font, style)
    font.save(target)


def rename(font: TTFont, style: str) -> None:
    postscript = FAMILY.replace(" ", "") + "-" + style.replace(" ", "")
    full = f"{FAMILY} {style}" if style != "Regular" else FAMILY
    legacy_family, legacy_style = FAMILY, style
    names = {
        1: legacy_family,
        2: legacy_style,
        3: f"{postscript};subset of Liberation Serif 2 (Debian fonts-liberation2)",
        4: full,
        6: postscript,
        16: FAMILY,
        17: style,
    }
    table = font["name"]
    for record in list(table.names):
        if record.nameID in (1, 2, 3, 4, 6, 16, 17, 21, 22):
            table.removeNames(nameID=record.nameID)
    for name_id, value in names.items():
        table.setName(value, name_id, 3, 1, 0x409)
        table.setName(value, name_id, 1, 0, 0)
    # Trademark notices on "Liberation" do not belong on the renamed subset.
    table.removeNames(nameID=7)


def main() -> int:
    if not SOURCE.is_dir():
        print(f"{SOURCE} missing: apt-get install fonts-liberation2", file=sys.stderr)
        return 1
    for style, filename in STYLES.items():
        target = HERE / f"BenhAnSerif-{style.replace(' ', '')}.ttf"
        build(style, SOURCE / filename, target)
        print(f"{target.name}: {target.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
