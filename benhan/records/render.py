"""Render record documents to A4 PDF with Typst.

The lead's code calls two functions:

- ``render(template, data)`` compiles ``benhan/records/typst/<template>`` with ``data``
  passed as one JSON string in ``sys.inputs.data`` (never spliced into Typst source, so
  no value can inject markup) and returns the PDF, its page count and where each
  signature slot's visible stamp goes (``Box``, PDF points, origin bottom-left, as pyHanko
  expects). ``render`` adds the QR code of ``data["lookup"]["url"]`` itself.
- ``stamp_print_copy(pdf, printed_at=..., printed_by=...)`` adds the "In lúc … bởi …"
  line that Vietnamese rules require on paper copies, as an *incremental update*: the
  signed bytes stay an unchanged prefix of the result, so the signed revision can still be
  cut out and verified; the print line lives only in the copy sent to the printer.

Only the fonts shipped in ``benhan/records/fonts/`` are used (system fonts are ignored), so a
PDF looks the same on every server. Compilers are cached per thread and template: the
first render of a template costs ~50 ms, later ones a few milliseconds.
"""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import segno
import typst

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "typst"
FONTS_DIR = HERE / "fonts"

TEMPLATES = (
    "outpatient_record",
    "inpatient_record",
    "treatment_sheet",
    "prescription",
    "discharge_paper",
    "surgical_consent",
    "commitment",
    "payment_statement",
    "lab_report",
    "imaging_report",
)


class RenderError(Exception):
    """A template failed to compile (bad template, or data of the wrong shape)."""


@dataclass(frozen=True)
class Box:
    """A signature box on a page, in PDF points, origin bottom-left (pyHanko's convention)."""

    page: int  # 0-based
    x1: float
    y1: float
    x2: float
    y2: float

    def as_tuple(self) -> tuple[float, float, float, float]:
        """(x1, y1, x2, y2), the order pyHanko's ``SigFieldSpec(box=...)`` takes."""
        return (self.x1, self.y1, self.x2, self.y2)


@dataclass(frozen=True)
class Rendered:
    pdf: bytes
    boxes: dict[str, Box]  # slot name -> where its visible signature goes
    pages: int


_local = threading.local()


def _template_path(template: str) -> Path:
    name = template.removesuffix(".typ")
    if not name.replace("_", "").isalnum():
        raise RenderError(f"bad template name: {template!r}")
    path = TEMPLATES_DIR / f"{name}.typ"
    if not path.is_file():
        raise RenderError(f"no such template: {template!r}")
    return path


def _compiler(path: Path) -> typst.Compiler:
    cache = getattr(_local, "compilers", None)
    if cache is None:
        cache = _local.compilers = {}
    compiler = cache.get(path)
    if compiler is None:
        compiler = typst.Compiler(
            str(path),
            root=str(TEMPLATES_DIR),
            # A directory: typst scans directories (single font files are ignored).
            font_paths=[str(FONTS_DIR)],
            ignore_system_fonts=True,
        )
        cache[path] = compiler
    return compiler


def qr_svg(url: str) -> str:
    """The QR code of ``url`` as a standalone SVG document (black modules, no border)."""
    out = io.BytesIO()
    segno.make(url, error="m", micro=False).save(
        out, kind="svg", border=0, xmldecl=False, svgns=True, svgclass=None, lineclass=None
    )
    return out.getvalue().decode("ascii")


def _prepare(data: dict) -> dict:
    data = dict(data)
    lookup = dict(data.get("lookup") or {})
    if lookup.get("url") and not lookup.get("qr_svg"):
        lookup["qr_svg"] = qr_svg(str(lookup["url"]))
    data["lookup"] = lookup
    paper = dict(data.get("paper") or {})
    if paper.get("url") and not paper.get("qr_svg"):
        paper["qr_svg"] = qr_svg(str(paper["url"]))
    data["paper"] = paper
    return data


def render(template: str, data: dict) -> Rendered:
    """Render ``template`` (e.g. "discharge_paper" or "discharge_paper.typ") with ``data``."""
    path = _template_path(template)
    payload = json.dumps(_prepare(data), ensure_ascii=False)
    compiler = _compiler(path)
    try:
        pdf = compiler.compile(sys_inputs={"data": payload})
        # query() reuses the layout memoised by compile() (same inputs): ~0.1 ms.
        marks = json.loads(compiler.query("<sigbox>"))
        last = json.loads(compiler.query("<lastpage>"))
    except typst.TypstError as exc:
        raise RenderError(f"{path.name}: {exc}") from exc
    boxes: dict[str, Box] = {}
    for mark in marks:
        v = mark["value"]
        top = v["page_height"] - v["y"]
        boxes.setdefault(
            v["slot"],
            Box(
                page=v["page"] - 1,
                x1=round(v["x"], 2),
                y1=round(top - v["h"], 2),
                x2=round(v["x"] + v["w"], 2),
                y2=round(top, 2),
            ),
        )
    pages = last[-1]["value"] if last else pdf.count(b"/Type /Page\n")
    return Rendered(pdf=pdf, boxes=boxes, pages=pages)


# ---- print copies ------------------------------------------------------------------


def compile_small(template: str, data: dict) -> bytes:
    """Compile one of the small helper templates (print_stamp, patient_mark) with `data`."""
    path = _template_path(template)
    try:
        return _compiler(path).compile(sys_inputs={"data": json.dumps(data, ensure_ascii=False)})
    except typst.TypstError as exc:
        raise RenderError(f"{path.name}: {exc}") from exc


def overlay(writer, page_ix: int, xobj, x: float, y: float, name: str = "BenhAnOverlay") -> None:
    """Draw form XObject `xobj` at (x, y) on page `page_ix` of an incremental writer.

    The page's existing content is wrapped in q/Q so its graphics state cannot leak into
    what is drawn on top. Only new objects are appended: the earlier bytes stay as they
    were (an incremental update).
    """
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.generic import pdf_name

    writer.add_stream_to_page(
        page_ix, writer.add_object(generic.StreamObject(stream_data=b"q")), prepend=True
    )
    writer.add_stream_to_page(page_ix, writer.add_object(generic.StreamObject(stream_data=b"Q")))
    content = b"q 1 0 0 1 %g %g cm /%s Do Q" % (x, y, name.encode("ascii"))
    writer.add_stream_to_page(
        page_ix,
        writer.add_object(generic.StreamObject(stream_data=content)),
        resources=generic.DictionaryObject(
            {pdf_name("/XObject"): generic.DictionaryObject({pdf_name("/" + name): xobj})}
        ),
    )


def stamp_pages(pdf: bytes, text: str, *, band: bool = False) -> bytes:
    """One line of text at the bottom of every page, as an incremental update.

    band=True puts the line on a white band, for scanned pages whose photo reaches the
    bottom of the page. Typeset by Typst with the shipped fonts and imported as a form
    XObject; the input bytes stay an unchanged prefix of the result.
    """
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.reader import PdfFileReader

    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    cache: dict[tuple[float, float], generic.IndirectObject] = {}
    for ix in range(int(writer.root["/Pages"]["/Count"])):
        page_ref, _ = writer.find_page_for_modification(ix)
        box = [float(x) for x in page_ref.get_object()["/MediaBox"]]
        size = (round(box[2] - box[0], 2), round(box[3] - box[1], 2))
        xobj = cache.get(size)
        if xobj is None:
            data = {"text": text, "width": size[0], "height": size[1], "band": band}
            line = PdfFileReader(io.BytesIO(compile_small("print_stamp", data)))
            xobj = cache[size] = writer.import_page_as_xobject(line, 0)
        overlay(writer, ix, xobj, box[0], box[1], "BenhAnPrintLine")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def stamp_print_copy(pdf: bytes, *, printed_at: str, printed_by: str) -> bytes:
    """Add "In lúc <printed_at> bởi <printed_by>" at the bottom of every page.

    An incremental update (stamp_pages): the input bytes (possibly signed and sealed)
    are kept unchanged as a prefix. Validators will report the appended page change
    after the seal, which is right: the result is a paper copy, not the archived
    document; the QR code on it leads to the verification page of the original.
    """
    return stamp_pages(pdf, f"In lúc {printed_at} bởi {printed_by}")


# ---- sample data (tests, benchmarks, template previews) ------------------------------


def sample(template: str) -> dict:
    """Realistic sample data for ``template`` from ``typst/samples.json``."""
    samples = json.loads((TEMPLATES_DIR / "samples.json").read_text(encoding="utf-8"))
    name = template.removesuffix(".typ")
    data = json.loads(json.dumps(samples["common"]))
    data.update(samples["forms"][name])
    return data
