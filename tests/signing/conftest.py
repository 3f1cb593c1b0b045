"""Signing fixtures: the facility PKI, credentials for two staff, a small 2-page PDF.

The PIN key derivation is made cheap here (SIGNING_PIN_KDF_COST=10 instead of 15);
keys are ECDSA P-256, which are generated in well under a millisecond.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PIN = "260719"
NURSE_PIN = "481516"
FONT_DIR = "/usr/share/fonts/truetype/dejavu"

TEMPLATE = """#set page(paper: "a4", margin: 2cm)
#set text(font: "DejaVu Sans", size: 11pt, lang: "vi")
= Giấy ra viện
Họ và tên người bệnh: Nguyễn Văn Ân — Khoa Nội

Chẩn đoán: Viêm phổi (J18.9); đái tháo đường týp 2 (E11.9)
#pagebreak()
Trang 2: chữ ký của bác sĩ điều trị, điều dưỡng và con dấu của cơ sở.
"""


@pytest.fixture(autouse=True)
def cheap_pin_kdf(settings):
    settings.SIGNING_PIN_KDF_COST = 10
    settings.PUBLIC_URL = "http://127.0.0.1:8000"
    settings.TSA_URL = ""


@pytest.fixture(scope="session")
def pdf_bytes() -> bytes:
    """A 2-page A4 PDF with Vietnamese text, compiled by Typst with DejaVu Sans."""
    import typst

    return typst.compile(TEMPLATE.encode(), font_paths=[FONT_DIR], ignore_system_fonts=True)


@pytest.fixture
def pki_ready(facility):
    from benhan.signing import pki

    pki.ensure_facility_pki(facility)
    return facility


@pytest.fixture
def doctor_cred(pki_ready, doctor):
    from benhan.signing import pki

    return pki.issue_staff_credential(doctor, PIN, practising_certificate="001234/HCM-CCHN")


@pytest.fixture
def nurse_cred(pki_ready, nurse):
    from benhan.signing import pki

    return pki.issue_staff_credential(nurse, NURSE_PIN)


@pytest.fixture
def sign_all(doctor_cred, nurse_cred, pdf_bytes, pki_ready):
    """sign_all(seal=True) -> PDF signed by the doctor and the nurse, then sealed."""
    from benhan.signing import pades, tsa

    def run(seal: bool = True, pdf: bytes = pdf_bytes) -> bytes:
        stamper = tsa.get_timestamper(pki_ready)
        pdf = pades.sign_pdf(
            pdf,
            signer=pades.signer_for_credential(doctor_cred, PIN),
            field_name="sig_doctor",
            page=1,
            box=(60, 600, 300, 680),
            stamp_lines=["Ký bởi: Trần Thị Mai", "BSCKI — Bác sĩ", "Ngày ký: 27/11/2026 10:15"],
            reason="Bác sĩ điều trị",
            location="Củ Chi",
            timestamper=stamper,
        )
        pdf = pades.sign_pdf(
            pdf,
            signer=pades.signer_for_credential(nurse_cred, NURSE_PIN),
            field_name="sig_nurse",
            page=1,
            box=(320, 600, 560, 680),
            stamp_lines=["Ký bởi: Lê Thị Hồng", "Điều dưỡng"],
            timestamper=stamper,
        )
        if seal:
            pdf = pades.sign_pdf(
                pdf,
                signer=pades.seal_signer(pki_ready),
                field_name="seal",
                page=1,
                box=(60, 480, 300, 560),
                stamp_lines=["Trung tâm Y tế huyện Củ Chi", "Đóng dấu điện tử"],
                timestamper=stamper,
                seal=True,
            )
        return pdf

    return run


@pytest.fixture
def root_pem(pki_ready, tmp_path) -> Path:
    from benhan.signing import pki

    path = tmp_path / "root.pem"
    path.write_text(pki.root_ca(pki_ready).cert_pem)
    return path


@pytest.fixture
def nss_db(tmp_path: Path, root_pem: Path) -> str:
    """An NSS database trusting the root, for pdfsig."""
    if not (shutil.which("pdfsig") and shutil.which("certutil")):
        pytest.skip("pdfsig (poppler-utils) and certutil (libnss3-tools) are not installed")
    db = tmp_path / "nss"
    db.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True)  # noqa: S603, S607
    subprocess.run(  # noqa: S603
        ["certutil", "-A", "-d", f"sql:{db}", "-n", "root", "-t", ",C,", "-i", str(root_pem)],  # noqa: S607
        check=True,
    )
    return f"sql:{db}"


@pytest.fixture(autouse=True)
def _english_messages():
    """Error messages are asserted in English (the source language); staff see Vietnamese."""
    from django.utils import translation

    with translation.override("en"):
        yield
