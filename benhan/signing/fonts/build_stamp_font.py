"""Build the stamp font, stamp-sans.ttf, from Debian's DejaVu Sans.

pyHanko's GlyphAccumulator writes glyph widths in raw font units, which is right
only for fonts with 1000 units per em; DejaVu has 2048 and comes out letter-spaced.
So: rescale to 1000 units per em, and keep only Latin and Vietnamese (the stamp
holds names, roles and times) to keep the signed PDFs small.

Run from the repository root (needs fonttools and fonts-dejavu-core):

    .venv/bin/python benhan/signing/fonts/build_stamp_font.py

The output is committed; run this again only to change the font.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont
from fontTools.ttLib.scaleUpem import scale_upem

SOURCE = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
OUT = Path(__file__).resolve().parent / "stamp-sans.ttf"
FAMILY = "BenhAn Stamp Sans"  # a modified Vera-licensed font carries its own name

UNICODES = [
    *range(0x20, 0x7F),  # ASCII
    *range(0xA0, 0x250),  # Latin-1, Latin Extended-A and -B (đ, ơ, ư)
    *range(0x300, 0x310),  # combining accents, should text arrive decomposed
    0x323,  # combining dot below
    *range(0x1E00, 0x1F00),  # Latin Extended Additional (ạ, ầ, ệ, ữ …)
    *range(0x2010, 0x2028),  # dashes, quotes, bullet, ellipsis
    0x2116,  # numero sign
]


def build(source: Path = SOURCE, out: Path = OUT) -> Path:
    font = TTFont(source)
    scale_upem(font, 1000)
    options = subset.Options()
    # No layout tables: Vietnamese uses precomposed letters here, and pyHanko subsets
    # the font again for every stamp, where decompiling GSUB/GPOS cost ~60 % of a
    # signature.
    options.layout_features = []
    options.drop_tables += ["GSUB", "GPOS", "GDEF", "MATH", "FFTM", "kern"]
    options.hinting = False
    options.name_IDs = ["*"]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=UNICODES)
    subsetter.subset(font)
    for record in font["name"].names:
        if record.nameID in (1, 16) or record.nameID == 4:
            record.string = FAMILY
        elif record.nameID == 6:
            record.string = FAMILY.replace(" ", "")
    font.save(out)
    return out


if __name__ == "__main__":
    if not SOURCE.exists():
        sys.exit(f"{SOURCE} is missing: apt-get install fonts-dejavu-core")
    path = build()
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")
