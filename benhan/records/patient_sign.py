"""The patient's own signature, drawn on a tablet: strokes, evidence, and into the PDF.

The tablet sends the raw strokes signature_pad recorded (points with their times). The
server checks them, draws them as an SVG itself (nothing drawn by the client is put
into a PDF), and builds the evidence: what was shown (SHA-256, size, text), who signed
and how their identity was checked, the witness, both clocks, the device.

Two ways into the document, chosen by whether staff have signed the version yet:

- ``place_in_page``: before any signature, the drawing goes into the patient's box as
  page content and the evidence is attached inside the PDF (an embedded JSON file), in
  one incremental update. The staff signatures and the facility seal that follow cover
  both.
- ``witness_appearance``: after a signature, page content may no longer change; the
  drawing becomes the appearance of a new signature field signed with the witness's
  key (actions.do_patient_sign), the evidence's SHA-256 in its reason.

Page images and text of the exact PDF come from PDFium (pypdfium2), which is not
thread-safe: one lock per process.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import threading
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _

from benhan.records.render import compile_small, overlay

EVIDENCE_NAME = "bang-chung-chu-ky-nguoi-benh.json"
EVIDENCE_TYPE = "benhan.patient-signature/1"
MAX_STROKES = 300
MAX_POINTS = 20_000
MIN_POINTS = 8
# Page images for the tablet: wide enough to read a form on a 10" screen.
PAGE_IMAGE_WIDTH = 1000

_pdfium_lock = threading.Lock()
_LEVELS = [0 if v < 70 else 110 if v < 135 else 255 for v in range(256)]


class DrawingError(ValueError):
    """The strokes sent are not a usable signature (empty, malformed, a dot)."""


@dataclass(frozen=True)
class Strokes:
    strokes: list[list[tuple[float, float, int, float]]]  # x, y (CSS px), time (ms), pressure
    width: float
    height: float
    ratio: float

    @property
    def points(self) -> int:
        return sum(len(s) for s in self.strokes)


def _num(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise DrawingError("not a number")
    return float(v)


def _BROKEN() -> str:  # noqa: N802 - reads as the message it returns
    return _("The drawing did not arrive intact; ask the patient to sign again.")


def parse_strokes(raw: str, canvas: str) -> Strokes:
    """Check what signature_pad sent: its point groups, and the canvas size in CSS px."""
    try:
        groups = json.loads(raw or "null")
        size = json.loads(canvas or "null")
    except ValueError as exc:
        raise DrawingError(_BROKEN()) from exc
    if not isinstance(size, dict) or not isinstance(groups, list):
        raise DrawingError(_("The drawing did not arrive intact; ask the patient to sign again."))
    try:
        w, h = _num(size.get("w")), _num(size.get("h"))
        ratio = _num(size.get("ratio", 1))
        if not (50 <= w <= 5000 and 20 <= h <= 5000):
            raise DrawingError("canvas")
        if len(groups) > MAX_STROKES:
            raise DrawingError("strokes")
        strokes = []
        total = 0
        for g in groups:
            pts = g.get("points") if isinstance(g, dict) else None
            if not isinstance(pts, list) or not pts:
                continue
            total += len(pts)
            if total > MAX_POINTS:
                raise DrawingError("points")
            stroke = []
            for p in pts:
                if not isinstance(p, dict):
                    raise DrawingError("point")
                x, y = _num(p.get("x")), _num(p.get("y"))
                t = int(_num(p.get("time", 0)))
                pressure = _num(p.get("pressure", 0.5))
                # A stroke may run a little past the edge of the canvas; no further.
                if not (-20 <= x <= w + 20 and -20 <= y <= h + 20):
                    raise DrawingError("outside")
                stroke.append((round(x, 1), round(y, 1), t, round(pressure, 3)))
            strokes.append(stroke)
    except DrawingError as exc:
        if exc.args and exc.args[0] in ("strokes", "points"):
            raise DrawingError(_("The drawing is too long to be a signature.")) from exc
        raise DrawingError(_BROKEN()) from exc
    xs = [p[0] for s in strokes for p in s]
    ys = [p[1] for s in strokes for p in s]
    # A tap or a dot is not a signature.
    if sum(len(s) for s in strokes) < MIN_POINTS or (
        max(xs) - min(xs) < 15 and max(ys) - min(ys) < 15
    ):
        raise DrawingError(
            _("The signature is empty or too small; ask the patient to sign across the box.")
        )
    return Strokes(strokes=strokes, width=w, height=h, ratio=ratio)


def signature_svg(s: Strokes) -> str:
    """The drawing as a small SVG: one polyline per stroke, cropped to what was drawn."""
    xs = [p[0] for st in s.strokes for p in st]
    ys = [p[1] for st in s.strokes for p in st]
    pad = 4
    x0, y0 = min(xs) - pad, min(ys) - pad
    w, h = max(xs) - x0 + pad, max(ys) - y0 + pad
    # Line width in drawing units, so that it looks like a pen whatever the scale.
    stroke_w = max(w / 160, h / 60, 1.6)
    paths = []
    for st in s.strokes:
        pts = [(p[0] - x0, p[1] - y0) for p in st]
        if len(pts) == 1:
            pts.append((pts[0][0] + 0.1, pts[0][1]))  # a dot: a very short line
        d = "M" + " L".join(f"{x:.1f} {y:.1f}" for x, y in pts)
        paths.append(f'<path d="{d}"/>')
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w:.1f} {h:.1f}" '
        f'width="{w:.1f}" height="{h:.1f}"><g fill="none" stroke="#000" '
        f'stroke-width="{stroke_w:.2f}" stroke-linecap="round" stroke-linejoin="round">'
        + "".join(paths)
        + "</g></svg>"
    )


def mark_pdf(width: float, height: float, *, svg: str | None, title: str | None,
             lines: list[str]) -> bytes:  # fmt: skip
    """A transparent page the size of the patient's box: the drawing (or a refusal)."""
    return compile_small(
        "patient_mark",
        {"width": width, "height": height, "svg": svg, "title": title, "lines": lines},
    )


def canonical(evidence: dict) -> bytes:
    """The evidence as stored and embedded: sorted keys, no spaces, UTF-8."""
    return json.dumps(evidence, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def place_in_page(pdf: bytes, *, page: int, box: tuple[float, float, float, float],
                  mark: bytes, evidence: bytes, description: str) -> bytes:  # fmt: skip
    """The drawing into the box on `page` and the evidence attached, in one incremental
    update. Only for a PDF that carries no signature yet (the caller checks)."""
    from pyhanko.pdf_utils import embed, generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.reader import PdfFileReader

    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    if writer.prev.embedded_signatures:
        raise ValueError("the PDF is already signed: its pages may not change")
    xobj = writer.import_page_as_xobject(PdfFileReader(io.BytesIO(mark)), 0)
    overlay(writer, page, xobj, box[0], box[1], "BenhAnPatientSignature")
    spec = embed.FileSpec(
        file_spec_string=EVIDENCE_NAME,
        file_name=EVIDENCE_NAME,
        embedded_data=embed.EmbeddedFileObject.from_file_data(
            writer, evidence, mime_type="application/json"
        ),
        description=description,
        af_relationship=generic.pdf_name("/Supplement"),
    )
    embed.embed_file(writer, spec)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def embedded_evidence(pdf: bytes) -> bytes | None:
    """The evidence file attached by place_in_page, or None (for tests and audits)."""
    import pikepdf

    with pikepdf.open(io.BytesIO(pdf)) as doc:
        f = doc.attachments.get(EVIDENCE_NAME)
        return f.get_file().read_bytes() if f is not None else None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- What the patient is shown ------------------------------------------------------


def page_count(pdf: bytes) -> int:
    import pypdfium2 as pdfium

    with _pdfium_lock:
        doc = pdfium.PdfDocument(pdf)
        try:
            return len(doc)
        finally:
            doc.close()


def page_texts(pdf: bytes) -> list[str]:
    """The text of each page, as PDFium reads it from the exact bytes shown."""
    import pypdfium2 as pdfium

    with _pdfium_lock:
        doc = pdfium.PdfDocument(pdf)
        try:
            out = []
            for page in doc:
                tp = page.get_textpage()
                out.append(tp.get_text_bounded().replace("\r\n", "\n"))
                tp.close()
                page.close()
            return out
        finally:
            doc.close()


def page_image(pdf: bytes, index: int, width: int = PAGE_IMAGE_WIDTH) -> bytes:
    """Page `index` of the exact PDF as a three-grey lossless WebP `width` pixels wide."""
    import pypdfium2 as pdfium

    with _pdfium_lock:
        doc = pdfium.PdfDocument(pdf)
        try:
            if not 0 <= index < len(doc):
                raise IndexError(index)
            page = doc[index]
            scale = width / page.get_width()
            image = page.render(scale=scale, grayscale=True).to_pil()
            page.close()
        finally:
            doc.close()
    # Three fixed levels (black, grey, white), lossless: text stays crisp at a quarter of
    # the size of lossy WebP, and a fixed table costs ~1 ms where a median cut costs ~70
    # (a form page: ~25 KB; bench/patient_sign.py, docs/decisions.md #22).
    out = io.BytesIO()
    image.convert("L").point(_LEVELS).save(out, "WEBP", lossless=True, quality=100, method=1)
    return out.getvalue()
