"""Specimen labels: a 50 × 25 mm PDF for any printer, and ZPL for thermal printers.

The barcode is Code128 of the accession number (digits only, so Code128 packs them in
pairs: a short symbol). The PDF is laid out by Typst with the shipped fonts, the bars
drawn from python-barcode's SVG, so it prints the same on every printer driver. ZPL
goes straight to a Zebra-compatible printer (203 dpi: 400 × 200 dots); printers rarely
carry a Vietnamese font, so the name is printed without diacritics there.
"""

from __future__ import annotations

import io

from django.utils import timezone

from benhan.lib.vntext import unaccent

_SEX = {"M": "Nam", "F": "Nữ"}


def barcode_svg(value: str) -> str:
    from barcode import Code128
    from barcode.writer import SVGWriter

    out = io.BytesIO()
    Code128(value, writer=SVGWriter()).write(
        out, options={"write_text": False, "module_height": 8.0, "module_width": 0.25,
                      "quiet_zone": 1.0, "background": "white", "foreground": "black"},
    )  # fmt: skip
    return out.getvalue().decode("utf-8")


def _facts(specimen) -> dict[str, str]:
    patient = specimen.order.encounter.patient
    tests = " ".join(i.test.code for i in specimen.items.select_related("test"))
    return {
        "accession": specimen.accession,
        "name": patient.full_name,
        "mrn": patient.mrn,
        "born": str(patient.birth_year or ""),
        "sex": _SEX.get(patient.sex, ""),
        "specimen": specimen.get_specimen_type_display(),
        "tests": tests[:60],
        "collected": timezone.localtime(specimen.collected_at).strftime("%d/%m %H:%M"),
    }


def label_pdf(specimens) -> bytes:
    from benhan.records.render import compile_small

    labels = [{**_facts(s), "barcode_svg": barcode_svg(s.accession)} for s in specimens]
    return compile_small("lab_label", {"labels": labels})


def _zpl_text(value: str) -> str:
    # ^FH lets us escape the three characters ZPL gives a meaning to.
    return unaccent(value).encode("ascii", "replace").decode().replace("_", "_5F").replace(
        "^", "_5E").replace("~", "_7E")  # fmt: skip


def label_zpl(specimens) -> str:
    """One ^XA…^XZ block per label, 50 × 25 mm at 203 dpi."""
    out = []
    for s in specimens:
        f = _facts(s)
        out.append("\n".join([
            "^XA", "^CI0", "^PW400", "^LL200", "^LH0,0",
            f"^FO16,10^A0N,24,22^FH^FD{_zpl_text(f['name'].upper())[:28]}^FS",
            f"^FO16,36^A0N,20,18^FH^FD{_zpl_text(f['mrn'])} {_zpl_text(f['sex'])} {f['born']}^FS",
            # Code128, subset C forced (">;") for a digits-only number: half the width.
            f"^FO30,60^BY2^BCN,70,N,N,N^FD>;{f['accession']}^FS",
            f"^FO16,136^A0N,26,24^FD{f['accession']}^FS",
            f"^FO16,166^A0N,18,16^FH^FD{_zpl_text(f['tests'])[:34]} {f['collected']}^FS",
            "^PQ1", "^XZ",
        ]))  # fmt: skip
    return "\n".join(out) + "\n"
