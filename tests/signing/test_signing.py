"""The internal PKI, PAdES signing, the facility seal and verification.

Verified three ways: verify_pdf (what `benhan verify` prints), pyHanko's own AdES
validation as `pyhanko sign adesverify` runs it, and poppler's pdfsig with an NSS
database trusting the facility root.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from io import BytesIO

import pytest
from asn1crypto import crl as asn1_crl
from asn1crypto import tsp
from cryptography import x509
from django.core.management import call_command
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader

from benhan.audit.chain import Actor
from benhan.signing import pades, pki, tsa
from benhan.signing.models import Credential
from benhan.signing.verify import verify_pdf

pytestmark = pytest.mark.django_db

PIN = "260719"  # as in conftest.py


def run_verify(tmp_path, pdf: bytes, *args) -> tuple[int, str]:
    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf)
    from io import StringIO

    out = StringIO()
    try:
        call_command("verify", str(path), *args, stdout=out)
    except SystemExit as exc:
        return exc.code, out.getvalue()
    return 0, out.getvalue()


# --- PKI ---


def test_ensure_facility_pki_is_idempotent(facility):
    pki.ensure_facility_pki(facility)
    pki.ensure_facility_pki(facility)
    assert facility.certificate_authorities.count() == 2
    assert Credential.objects.filter(facility=facility, kind="seal").count() == 1
    tsa_cert = pki.tsa_credential(facility).certificate
    eku = tsa_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical
    assert list(eku.value) == [x509.oid.ExtendedKeyUsageOID.TIME_STAMPING]
    issuing = pki.issuing_ca(facility).certificate
    issuing.verify_directly_issued_by(pki.root_ca(facility).certificate)


def test_staff_certificate_names_the_person(doctor_cred, doctor, settings):
    cert = doctor_cred.certificate
    subject = cert.subject
    oid = x509.oid.NameOID
    assert subject.get_attributes_for_oid(oid.COMMON_NAME)[0].value == "Trần Thị Mai"
    assert subject.get_attributes_for_oid(oid.TITLE)[0].value == "BSCKI"
    assert subject.get_attributes_for_oid(oid.ORGANIZATIONAL_UNIT_NAME)[0].value == "Bác sĩ"
    assert subject.get_attributes_for_oid(oid.SERIAL_NUMBER)[0].value == "CCHN:001234/HCM-CCHN"
    dp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    url = dp[0].full_name[0].value
    assert url == f"http://127.0.0.1:8000/pki/crl/{doctor_cred.issuer_id}.crl"
    assert b"BEGIN" not in bytes(doctor_cred.key_encrypted)  # encrypted, not PEM


def test_new_credential_supersedes_the_old(doctor_cred, doctor):
    newer = pki.issue_staff_credential(doctor, "739146")
    doctor_cred.refresh_from_db()
    assert doctor_cred.revocation_reason == "superseded"
    assert pki.active_credential(doctor) == newer


@pytest.mark.parametrize("pin", ["12345", "1234567890123", "12a456", "111111", "123456", ""])
def test_pin_rules(pin):
    with pytest.raises(pki.InvalidPin):
        pki.validate_pin(pin)


def test_wrong_pin_five_times_locks(doctor_cred):
    for left in (4, 3, 2, 1):
        with pytest.raises(pki.WrongPin) as exc:
            pki.load_private_key(doctor_cred, "000001")
        assert exc.value.attempts_left == left
    with pytest.raises(pki.PinLocked):
        pki.load_private_key(doctor_cred, "000001")
    doctor_cred.refresh_from_db()
    assert doctor_cred.failed_pin_attempts == 5 and doctor_cred.is_locked
    # Even the right PIN no longer works.
    with pytest.raises(pki.PinLocked):
        pades.signer_for_credential(doctor_cred, PIN)


def test_right_pin_resets_the_count(doctor_cred):
    with pytest.raises(pki.WrongPin):
        pki.load_private_key(doctor_cred, "000001")
    pki.load_private_key(doctor_cred, PIN)
    doctor_cred.refresh_from_db()
    assert doctor_cred.failed_pin_attempts == 0


def test_change_pin(doctor_cred):
    pki.change_pin(doctor_cred, PIN, "90817263")
    with pytest.raises(pki.WrongPin):
        pki.load_private_key(doctor_cred, PIN)
    assert pki.load_private_key(doctor_cred, "90817263") is not None


def test_ca_keys_need_the_passphrase(pki_ready, settings):
    from benhan.signing import keys

    ca = pki.root_ca(pki_ready)
    settings.CA_PASSPHRASE = "another passphrase entirely"
    with pytest.raises(keys.DecryptionFailed):
        keys.decrypt_key(bytes(ca.key_encrypted), format(ca.certificate.serial_number, "x"))


# --- Signing and verification ---


def test_two_signatures_and_seal_verify(sign_all):
    pdf = sign_all()
    report = verify_pdf(pdf)
    assert report.ok, report.as_dict()
    assert report.sealed and not report.changed_after_seal
    doctor, nurse, seal = report.signatures
    assert (doctor.field_name, doctor.signer_name, doctor.title, doctor.role) == (
        "sig_doctor",
        "Trần Thị Mai",
        "BSCKI",
        "Bác sĩ",
    )
    assert doctor.practising_certificate == "001234/HCM-CCHN"
    assert nurse.signer_name == "Lê Thị Hồng" and nurse.role == "Điều dưỡng"
    assert seal.is_seal and not doctor.is_seal
    for s in report.signatures:
        assert s.intact and s.trusted and s.timestamp_valid and s.time_source == "timestamp"
    assert doctor.modified_after  # the nurse and the seal came after
    assert not seal.modified_after
    assert doctor.signing_time <= nurse.signing_time <= seal.signing_time


def test_signed_pdf_is_incremental_and_pades(sign_all, pdf_bytes):
    pdf = sign_all()
    assert pdf.startswith(pdf_bytes)
    reader = PdfFileReader(BytesIO(pdf))
    sigs = reader.embedded_signatures
    assert [s.sig_object["/SubFilter"] for s in sigs] == [
        *["/ETSI.CAdES.detached"] * 3,
        "/ETSI.RFC3161",  # the seal's document timestamp: B-LTA
    ]
    assert "/DSS" in reader.root  # B-LT: certificates and CRLs embedded


def test_pyhanko_adesverify_accepts(sign_all, root_pem, tmp_path):
    """The CLI `pyhanko sign adesverify --trust root.pem` (if pyhanko-cli is installed),
    else the same AdES validation through the API."""
    pdf = sign_all()
    path = tmp_path / "signed.pdf"
    path.write_bytes(pdf)
    cli = shutil.which("pyhanko") or (
        str(__import__("pathlib").Path(__import__("sys").executable).parent / "pyhanko")
    )
    if __import__("os").path.exists(cli):
        result = subprocess.run(  # noqa: S603
            [cli, "sign", "adesverify", "--trust", str(root_pem), "--trust-replace", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        lines = [line for line in result.stdout.splitlines() if line.count(":") >= 2]
        assert len(lines) == 3
        assert all(":INTACT:TRUSTED" in line for line in lines)
    else:
        report = verify_pdf(
            pdf,
            trust_roots=[x509.load_pem_x509_certificate(root_pem.read_bytes())],
            current_crls=False,
        )
        assert report.ok


def test_pdfsig_trusts_the_root(sign_all, nss_db, tmp_path):
    db = nss_db
    path = tmp_path / "signed.pdf"
    path.write_bytes(sign_all())
    out = subprocess.run(  # noqa: S603
        [shutil.which("pdfsig"), "-nssdir", db, str(path)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert out.count("Signature is Valid.") == 3, out
    assert out.count("Certificate is Trusted.") == 3, out
    assert "Trần Thị Mai" in out


def test_flipped_byte_is_invalid(sign_all, tmp_path):
    pdf = bytearray(sign_all())
    # A byte of page content, inside every signature's signed range.
    reader = PdfFileReader(BytesIO(bytes(pdf)))
    byte_range = reader.embedded_signatures[0].sig_object["/ByteRange"]
    start, length = byte_range[0], byte_range[1]
    index = pdf.index(b"stream", start) + 20
    assert index < start + length
    pdf[index] ^= 0x01
    report = verify_pdf(bytes(pdf))
    assert not report.ok
    assert not all(s.intact for s in report.signatures)
    code, out = run_verify(tmp_path, bytes(pdf))
    assert code == 1 and "INVALID" in out


def _append_annotation(pdf: bytes) -> bytes:
    writer = IncrementalPdfFileWriter(BytesIO(pdf))
    page_ref = writer.root["/Pages"]["/Kids"][0]
    page = page_ref.get_object()
    annot = writer.add_object(
        generic.DictionaryObject(
            {
                generic.NameObject("/Type"): generic.NameObject("/Annot"),
                generic.NameObject("/Subtype"): generic.NameObject("/Text"),
                generic.NameObject("/Rect"): generic.ArrayObject(
                    [generic.FloatObject(v) for v in (100, 100, 120, 120)]
                ),
                generic.NameObject("/Contents"): generic.TextStringObject("Sửa sau khi đóng dấu"),
            }
        )
    )
    annots = page.get("/Annots")
    if annots is None:
        page[generic.NameObject("/Annots")] = generic.ArrayObject([annot])
    else:
        annots.get_object().append(annot)
    writer.update_container(page)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def test_edit_appended_after_the_seal_is_reported(sign_all, tmp_path):
    edited = _append_annotation(sign_all())
    report = verify_pdf(edited)
    assert not report.ok
    assert report.changed_after_seal
    assert report.signatures[-1].modified_after
    assert all(s.intact for s in report.signatures)  # the signed bytes are untouched
    code, out = run_verify(tmp_path, edited)
    assert code == 1
    assert "CHANGED AFTER THE SEAL" in out


def test_sign_after_seal_is_refused(sign_all, doctor_cred):
    sealed = sign_all()
    with pytest.raises(pades.DocumentSealed):
        pades.sign_pdf(
            sealed, signer=pades.signer_for_credential(doctor_cred, PIN), field_name="late"
        )
    with pytest.raises(pades.DocumentSealed):
        pades.sign_pdf(
            sealed, signer=pades.seal_signer(doctor_cred.facility), field_name="seal2", seal=True
        )


def test_revoked_after_signing_still_verifies(sign_all, doctor_cred):
    pdf = sign_all(seal=False)
    pki.revoke(doctor_cred, "affiliation_changed", Actor(None))
    report = verify_pdf(pdf)
    doctor = report.signatures[0]
    assert report.ok, [s.problems for s in report.signatures]
    assert doctor.revoked_at is not None and doctor.revoked_after_signing is True


def test_signing_with_a_revoked_certificate_is_refused(doctor_cred, pdf_bytes, pki_ready):
    signer = pades.signer_for_credential(doctor_cred, PIN)  # unlocked before revocation
    pki.revoke(doctor_cred, "key_compromise", Actor(None))
    with pytest.raises(pki.CredentialUnusable):
        pades.signer_for_credential(doctor_cred, PIN)
    with pytest.raises(pades.SignatureFailed):
        pades.sign_pdf(
            pdf_bytes, signer=signer, field_name="sig", timestamper=tsa.get_timestamper(pki_ready)
        )


def test_unsigned_pdf_is_not_ok(pdf_bytes, pki_ready, tmp_path):
    assert not verify_pdf(pdf_bytes).ok
    code, _ = run_verify(tmp_path, pdf_bytes)
    assert code == 1


def test_foreign_root_is_not_trusted(sign_all, other_facility):
    pdf = sign_all()
    pki.ensure_facility_pki(other_facility)
    report = verify_pdf(pdf, trust_roots=[pki.root_ca(other_facility).certificate])
    assert not report.ok
    assert not any(s.trusted for s in report.signatures)


# --- Command line ---


def test_benhan_verify_valid_and_json(sign_all, tmp_path):
    pdf = sign_all()
    code, out = run_verify(tmp_path, pdf)
    assert code == 0, out
    assert "Trần Thị Mai" in out and "VALID" in out and "nothing after the seal" in out
    code, out = run_verify(tmp_path, pdf, "--json")
    data = json.loads(out)
    assert code == 0 and data["ok"] and len(data["signatures"]) == 3
    assert data["signatures"][2]["is_seal"]


def test_pki_commands(facility, doctor, tmp_path, monkeypatch):
    from io import StringIO

    call_command("pki", "init", stdout=StringIO())
    monkeypatch.setattr("sys.stdin", StringIO("572819\n"))
    out = StringIO()
    call_command("pki", "issue", "doctor", "--pin-stdin", stdout=out)
    assert "issued certificate" in out.getvalue()
    cred = pki.active_credential(doctor)
    assert pki.load_private_key(cred, "572819")
    call_command("pki", "revoke", "doctor", "--reason", "affiliation_changed", stdout=StringIO())
    cred.refresh_from_db()
    assert cred.is_revoked
    root = tmp_path / "root.pem"
    call_command("pki", "export-root", "--out", str(root), stdout=StringIO())
    assert x509.load_pem_x509_certificate(root.read_bytes()) == pki.root_ca(facility).certificate


# --- HTTP endpoints ---


def test_root_endpoint(client, pki_ready):
    r = client.get("/pki/root.pem")
    assert r.status_code == 200
    assert x509.load_pem_x509_certificate(r.content) == pki.root_ca(pki_ready).certificate
    assert client.get(f"/pki/root-{pki_ready.code}.pem").status_code == 200
    assert client.get("/pki/root-99999.pem").status_code == 404


def test_crl_endpoint_lists_the_revoked_serial(client, doctor_cred, nurse_cred):
    pki.revoke(doctor_cred, "key_compromise", Actor(None))
    r = client.get(f"/pki/crl/{doctor_cred.issuer_id}.crl")
    assert r.status_code == 200 and r["Content-Type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(r.content)
    assert crl.is_signature_valid(doctor_cred.issuer.certificate.public_key())
    revoked = crl.get_revoked_certificate_by_serial_number(int(doctor_cred.serial, 16))
    assert revoked is not None
    assert crl.get_revoked_certificate_by_serial_number(int(nurse_cred.serial, 16)) is None
    assert asn1_crl.CertificateList.load(r.content)["tbs_cert_list"]["crl_extensions"]


def test_tsa_endpoint_answers_rfc3161(client, pki_ready):
    import hashlib
    import os

    from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
    from pyhanko_certvalidator import ValidationContext

    digest = hashlib.sha256(b"hello").digest()
    nonce = int.from_bytes(os.urandom(8), "big")
    req = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": digest,
            },
            "nonce": nonce,
            "cert_req": True,
        }
    )
    r = client.post("/pki/tsa", req.dump(), content_type="application/timestamp-query")
    assert r.status_code == 200 and r["Content-Type"] == "application/timestamp-reply"
    resp = tsp.TimeStampResp.load(r.content)
    assert resp["status"]["status"].native == "granted"
    token = resp["time_stamp_token"]
    tst_info = token["content"]["encap_content_info"]["content"].parsed
    assert tst_info["nonce"].native == nonce
    # Whole seconds: fractional genTime values sent asn1crypto into multi-second stalls.
    assert tst_info["gen_time"].native.microsecond == 0
    assert tst_info["message_imprint"]["hashed_message"].native == digest
    root = pades.to_asn1(pki.root_ca(pki_ready).certificate)
    vc = ValidationContext(
        trust_roots=[root], crls=pki.facility_crls(pki_ready), allow_fetching=False
    )
    import asyncio

    status = asyncio.run(
        validate_tst_signed_data(token["content"], vc, expected_tst_imprint=lambda _algo: digest)
    )
    assert status["intact"] and status["valid"]
    # The TSA certificate chains to the facility root, for time stamping, not revoked.
    from pyhanko_certvalidator import CertificateValidator

    validator = CertificateValidator(status["signing_cert"], validation_context=vc)
    path = asyncio.run(validator.async_validate_usage(set(), {"time_stamping"}, True))
    assert path.first.subject == root.subject
    # Rubbish and the wrong content type are refused.
    bad = client.post("/pki/tsa", b"nonsense", content_type="application/timestamp-query")
    assert tsa.TimeStampResponse.load(bad.content)["status"]["status"].native == "rejection"
    assert client.post("/pki/tsa", b"x", content_type="text/plain").status_code == 415
    assert client.get("/pki/tsa").status_code == 405


def test_tsa_is_csrf_exempt_and_public(pki_ready):
    from django.test import Client

    c = Client(enforce_csrf_checks=True)
    req = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": b"\0" * 32,
            },
        }
    )
    r = c.post("/pki/tsa", req.dump(), content_type="application/timestamp-query")
    assert r.status_code == 200


def test_get_timestamper_uses_the_configured_url(pki_ready, settings):
    from pyhanko.sign.timestamps import HTTPTimeStamper

    assert isinstance(tsa.get_timestamper(pki_ready), tsa.FacilityTimeStamper)
    settings.TSA_URL = "http://tsa.example.invalid/"
    assert isinstance(tsa.get_timestamper(pki_ready), HTTPTimeStamper)


def test_stamp_font_is_rescaled():
    from fontTools.ttLib import TTFont

    font = TTFont(pades.FONT)
    assert font["head"].unitsPerEm == 1000
    cmap = font.getBestCmap()
    assert all(ord(ch) in cmap for ch in "Trần Thị Mai ĐƯỜNG ỹ ữ ậ")


def test_revoked_between_signature_and_seal(doctor_cred, nurse_cred, pdf_bytes, pki_ready):
    """The seal's validation data then lists the doctor as revoked — after the doctor signed."""
    stamper = tsa.get_timestamper(pki_ready)
    pdf = pades.sign_pdf(
        pdf_bytes,
        signer=pades.signer_for_credential(doctor_cred, PIN),
        field_name="sig_doctor",
        timestamper=stamper,
    )
    pki.revoke(doctor_cred, "affiliation_changed", Actor(None))
    pdf = pades.sign_pdf(
        pdf, signer=pades.seal_signer(pki_ready), field_name="seal", timestamper=stamper, seal=True
    )
    report = verify_pdf(pdf)
    assert report.ok, [s.problems for s in report.signatures]
    assert report.signatures[0].revoked_after_signing
