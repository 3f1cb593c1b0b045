"""Paper into the record: phone photos of pages → compact A4 PDFs, and checks on
uploaded outside PDFs. See benhan.scans.processing."""

from benhan.scans.processing import (
    HEIF_SUPPORTED,
    MAX_PAGES,
    MAX_PIXELS,
    ScanError,
    ScanOptions,
    build_pdf,
    check_pdf_upload,
    image_to_page,
    process,
)

__all__ = [
    "HEIF_SUPPORTED",
    "MAX_PAGES",
    "MAX_PIXELS",
    "ScanError",
    "ScanOptions",
    "build_pdf",
    "check_pdf_upload",
    "image_to_page",
    "process",
]
