"""Links printed as QR codes: filing the signed paper, and the patient's own copy.

A form that needs a handwritten signature carries a second QR code: a link to the
upload page for exactly that document and version. The link holds a token signed with
the server's secret key (Django's TimestampSigner), so it cannot be forged or pointed
at another document, and it expires (BENHAN_PAPER_QR_DAYS, 90 days by default): paper
signed months later should be printed again. It grants nothing by itself: the upload
page needs a signed-in staff member of the same facility whose role and department
allow it (benhan.audit.access.get_document_for_paper).

The patient's copy link works the other way: after signing on the tablet the patient
may scan it with their own phone and download the signed PDF, without an account, for
BENHAN_PATIENT_COPY_HOURS (24 by default). It names one version and serves that
version as it stands (with the signatures and seal added since).

Photographed pages are read for QR codes (zxing-cpp): a page that carries the code of
another document is refused, so one patient's paper is not filed into another's record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.urls import reverse

PAPER_SALT = "benhan.records.paper"
COPY_SALT = "benhan.records.patient-copy"


class InvalidTokenError(Exception):
    """Not a token this server made (forged, altered, or cut short)."""


class ExpiredTokenError(Exception):
    """A genuine token, too old."""


@dataclass(frozen=True)
class PaperRef:
    document_id: int
    version: int


def _base() -> str:
    return getattr(settings, "PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")


def paper_token(document_id: int, version: int) -> str:
    return signing.TimestampSigner(salt=PAPER_SALT).sign(f"{document_id}.{version}")


def paper_url(document_id: int, version: int) -> str:
    return _base() + reverse("paper", args=[paper_token(document_id, version)])


def read_paper_token(token: str, *, max_age_days: int | None = None) -> PaperRef:
    """The document and version a paper QR names. Raises InvalidTokenError or ExpiredTokenError.

    max_age_days=None uses BENHAN_PAPER_QR_DAYS; 0 ignores the age (used when reading
    the QR codes on photographed pages, where only the document matters).
    """
    days = settings.PAPER_QR_DAYS if max_age_days is None else max_age_days
    signer = signing.TimestampSigner(salt=PAPER_SALT)
    try:
        value = signer.unsign(token, max_age=days * 86400 if days else None)
    except signing.SignatureExpired as exc:
        raise ExpiredTokenError(str(exc)) from exc
    except signing.BadSignature as exc:
        raise InvalidTokenError(str(exc)) from exc
    doc, _, version = value.partition(".")
    if not (doc.isdigit() and version.isdigit()):
        raise InvalidTokenError(value)
    return PaperRef(int(doc), int(version))


def copy_token(document_id: int, version: int) -> str:
    return signing.TimestampSigner(salt=COPY_SALT).sign(f"{document_id}.{version}")


def copy_url(document_id: int, version: int) -> str:
    return _base() + reverse("patient_copy", args=[copy_token(document_id, version)])


def read_copy_token(token: str) -> tuple[int, int]:
    hours = settings.PATIENT_COPY_HOURS
    if hours <= 0:
        raise InvalidTokenError("patient copy links are turned off")
    try:
        value = signing.TimestampSigner(salt=COPY_SALT).unsign(token, max_age=hours * 3600)
    except signing.SignatureExpired as exc:
        raise ExpiredTokenError(str(exc)) from exc
    except signing.BadSignature as exc:
        raise InvalidTokenError(str(exc)) from exc
    doc, _, version = value.partition(".")
    if not (doc.isdigit() and version.isdigit()):
        raise InvalidTokenError(value)
    return int(doc), int(version)


# --- QR codes on photographed pages -------------------------------------------------

_LOOKUP = re.compile(r"/v/([0-9A-Z]{4}-[0-9A-Z]{4})/?$")
_PAPER = re.compile(r"/p/([^/?#]+)/?$")


@dataclass(frozen=True)
class PageCode:
    page: int  # 1-based
    lookup_code: str = ""
    paper: PaperRef | None = None


def read_page_codes(pdf: bytes, *, scale: float = 2.0) -> list[PageCode]:
    """The Bệnh Án QR codes found on each page of a PDF. Codes that are not ours (a
    bank's, a pharmacy's) are ignored.

    A page that is one photo (what benhan.scans builds) is read from its JPEG at full
    size; any other page is rendered by PDFium at `scale` (2: the footer QR of a printed
    form is ~1.45 cm, too small to read at 1).
    """
    import zxingcpp

    found = []
    for i, image in enumerate(_page_images(pdf, scale), start=1):
        for result in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode):
            code = _parse(result.text, i)
            if code is not None:
                found.append(code)
    return found


def _page_images(pdf: bytes, scale: float):
    import io

    import pikepdf
    import pypdfium2 as pdfium
    from PIL import Image

    from benhan.records.patient_sign import _pdfium_lock

    photos: dict[int, bytes] = {}
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        for i, page in enumerate(doc.pages):
            images = list(page.get_images(recursive=False).values())
            if len(images) == 1 and images[0].get("/Filter") == pikepdf.Name.DCTDecode:
                photos[i] = images[0].read_raw_bytes()
        count = len(doc.pages)
    missing = [i for i in range(count) if i not in photos]
    rendered = {}
    if missing:
        with _pdfium_lock:
            document = pdfium.PdfDocument(pdf)
            try:
                for i in missing:
                    page = document[i]
                    rendered[i] = page.render(scale=scale, grayscale=True).to_pil().convert("L")
                    page.close()
            finally:
                document.close()
    for i in range(count):
        yield rendered[i] if i in rendered else Image.open(io.BytesIO(photos[i])).convert("L")


def _parse(text: str, page: int) -> PageCode | None:
    path = urlsplit(text.strip()).path
    m = _LOOKUP.search(path)
    if m:
        return PageCode(page=page, lookup_code=m.group(1))
    m = _PAPER.search(path)
    if m:
        try:
            return PageCode(page=page, paper=read_paper_token(m.group(1), max_age_days=0))
        except InvalidTokenError:
            return None
    return None
