"""The patient signs a consent form on the tablet, in a real browser, through the seal.

The nurse opens the completed surgical consent, hands the tablet over ("Sign with the
patient"), the page images of the exact PDF load, she notes how the identity was
checked and the patient draws two strokes with the mouse on the signature pad. The
attending doctor signs with his PIN, the records officer seals. The sealed PDF is then
checked three ways: benhan's own verify_pdf, pyHanko's validation API trusting only
the facility root, and poppler's pdfsig with an NSS database trusting that root. The
evidence embedded in the PDF is the evidence recorded.

Also: the patient's refusal, witnessed; and the page without JavaScript (the pad needs
it; the refusal does not).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from io import BytesIO

import pytest
from django.db import transaction
from playwright.sync_api import expect

from benhan.audit.chain import Actor
from benhan.records import actions
from benhan.records.models import Document, DocumentStatus, PatientSignature
from benhan.records.patient_sign import embedded_evidence
from benhan.records.storage import default_store
from benhan.signing import pki
from benhan.signing.verify import verify_pdf

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PIN = "246810"
CONSENT = {"procedure": "Nội soi dạ dày", "risks": "Chảy máu, thủng (hiếm gặp)"}
REFUSAL = "Muốn hỏi ý kiến con trai trước"


@pytest.fixture(autouse=True)
def _signing_settings(settings, tmp_path):
    settings.SIGNING_PIN_KDF_COST = 10
    settings.TSA_URL = ""
    settings.DOCUMENTS_DIR = tmp_path / "documents"


@pytest.fixture
def credentials(facility, doctor, nurse):
    pki.ensure_facility_pki(facility)
    pki.issue_staff_credential(doctor, PIN)
    pki.issue_staff_credential(nurse, PIN)


@pytest.fixture
def consent(encounter, credentials, doctor) -> Document:
    """A surgical consent, filled in and completed by the doctor: ready for the patient."""
    actor = Actor(doctor, "127.0.0.1")
    with transaction.atomic():
        rec = actions.do_open_record(actor, encounter)
        doc = actions.do_create_document(actor, rec, "surgical_consent")
        doc = actions.do_save_draft(actor, doc, CONSENT)
    actions.do_complete(actor, doc)
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.COMPLETED
    return doc


def _flash(page):
    return page.locator("ul.messages[role=status]")


def _sign_out(page, tr):
    page.get_by_role("button", name=tr("Sign out"), exact=True).click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))


def _open_signing_page(page, doc, tr):
    page.goto(f"/records/documents/{doc.pk}/")
    page.get_by_role("link", name=tr("Sign with the patient"), exact=True).click()
    expect(page).to_have_url(re.compile(rf"/records/documents/{doc.pk}/patient-sign/$"))


def _draw(page, box, points, steps=4):
    """One stroke with the mouse through `points` (fractions of the pad's box)."""

    def at(fx, fy):
        return box["x"] + fx * box["width"], box["y"] + fy * box["height"]

    page.mouse.move(*at(*points[0]))
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*at(*p), steps=steps)
        page.wait_for_timeout(15)  # a hand is not instantaneous: the points get times
    page.mouse.up()


# --- pyHanko and pdfsig, independently of benhan.signing.verify ---------------------------


def _off_the_loop(fn, *args, **kwargs):
    """fn(*args) in another thread: while Playwright's sync API is alive its asyncio loop
    runs on this one, and pyHanko's validation calls asyncio.run(), which refuses to run
    inside a running loop."""
    from django.db import connection

    def run():
        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()  # the thread's own connection

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def _pyhanko_statuses(pdf: bytes, facility) -> list:
    """Every signature validated by pyHanko's API, trusting only the facility root."""
    from cryptography.hazmat.primitives import serialization
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp
    from pyhanko_certvalidator import ValidationContext

    from benhan.signing import pades

    root = pades.to_asn1(pki.root_ca(facility).certificate)
    assert root.dump() == pki.root_ca(facility).certificate.public_bytes(serialization.Encoding.DER)
    context = ValidationContext(
        trust_roots=[root], crls=pki.facility_crls(facility), allow_fetching=False
    )
    reader = PdfFileReader(BytesIO(pdf), strict=False)
    statuses = []
    for embedded in reader.embedded_signatures:
        if embedded.sig_object_type == "/DocTimeStamp":
            status = validate_pdf_timestamp(embedded, validation_context=context)
        else:
            status = validate_pdf_signature(
                embedded, signer_validation_context=context, ts_validation_context=context
            )
        statuses.append((embedded.field_name, embedded.sig_object_type, status))
    return statuses


def _nss_db(tmp_path, facility) -> str:
    """An NSS database trusting the facility root (as tests/signing/conftest.py's nss_db)."""
    root = tmp_path / "root.pem"
    root.write_text(pki.root_ca(facility).cert_pem)
    db = tmp_path / "nss"
    db.mkdir()
    certutil = shutil.which("certutil")
    subprocess.run([certutil, "-N", "-d", f"sql:{db}", "--empty-password"], check=True)  # noqa: S603
    subprocess.run(  # noqa: S603
        [certutil, "-A", "-d", f"sql:{db}", "-n", "root", "-t", ",C,", "-i", str(root)],
        check=True,
    )
    return f"sql:{db}"


def _pdfsig(pdf: bytes, tmp_path, facility) -> str:
    path = tmp_path / "sealed.pdf"
    path.write_bytes(pdf)
    result = subprocess.run(  # noqa: S603
        [shutil.which("pdfsig"), "-nssdir", _nss_db(tmp_path, facility), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


# --- The patient signs, staff sign, the facility seals ------------------------------------


def test_patient_draws_with_the_mouse_then_staff_sign_and_seal(
    page,
    consent,
    facility,
    patient,
    nurse,
    doctor,
    records_officer,
    password,
    sign_in,
    tr,
    label,
    tmp_path,
):
    # --- The nurse hands the tablet to the patient ------------------------------------
    sign_in(page, nurse, password)
    page.goto(f"/records/documents/{consent.pk}/")
    expect(page.locator("main")).to_contain_text(
        tr("This form needs the patient's own signature: on the tablet, or on paper filed "
           "with the QR code.")
    )  # fmt: skip
    expect(page.get_by_role("link", name=tr("File the signed paper"), exact=True)).to_be_visible()
    _open_signing_page(page, consent, tr)

    # The exact PDF, as page images: every one loads (the lazy ones once scrolled to).
    images = page.locator(".doc-pages img")
    count = images.count()
    assert count >= 1
    for i in range(count):
        image = images.nth(i)
        image.scroll_into_view_if_needed()
        expect(image).to_have_js_property("complete", True)
        width = image.evaluate("img => img.naturalWidth")
        assert width > 0, f"page image {i + 1} did not load"
    expect(images.first).to_have_attribute("alt", re.compile(r"\S"))
    version = consent.current_version()
    expect(page.locator("main")).to_contain_text(version.current_sha256)

    # Who signs and how they were identified: the patient, citizen ID card seen.
    expect(page.get_by_role("radio", name=tr("The patient"), exact=True)).to_be_checked()
    page.get_by_label(label("How the identity was checked")).first.select_option("cccd")
    page.get_by_label(label("ID number seen, or how")).first.fill(patient.cccd)

    # Nothing drawn yet: the button waits.
    submit = page.locator("#pad-submit")
    expect(submit).to_be_disabled()
    pad = page.locator("canvas#pad")
    pad.scroll_into_view_if_needed()
    expect(pad).to_have_accessible_name(re.compile(r"\S"))
    box = pad.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 100, box

    # A stroke that is then cleared: the button goes back to disabled.
    _draw(page, box, [(0.1, 0.5), (0.3, 0.3), (0.5, 0.6)])
    expect(submit).to_be_enabled()
    page.locator("#pad-clear").click()
    expect(submit).to_be_disabled()

    # The signature: a wave, then a stroke across it.
    _draw(page, box, [(0.12, 0.55), (0.2, 0.3), (0.3, 0.7), (0.4, 0.35), (0.5, 0.65), (0.6, 0.4)])
    _draw(page, box, [(0.15, 0.75), (0.35, 0.72), (0.55, 0.7), (0.7, 0.66)])
    expect(submit).to_be_enabled()
    submit.click()

    # --- The patient signed: their copy ---------------------------------------------------
    expect(page).to_have_url(re.compile(rf"/records/documents/{consent.pk}/patient-signed/$"))
    main = page.locator("main")
    signed_by = tr("Signed by %(n)s, witnessed by %(w)s.", n=patient.full_name, w=nurse.full_name)
    expect(main.locator(".panel.ok")).to_contain_text(signed_by)
    qr = main.get_by_role("img", name=tr("QR code of the download link"), exact=True)
    expect(qr).to_have_js_property("complete", True)
    assert qr.evaluate("img => img.naturalWidth") > 0
    assert qr.get_attribute("src").startswith("data:image/svg+xml;base64,")
    print_link = main.get_by_role("link", name=tr("Print the copy"), exact=True)
    expect(print_link).to_have_attribute("href", f"/records/documents/{consent.pk}/v1/print.pdf")
    download = main.get_by_role("link", name=tr("Download the PDF"), exact=True)
    expect(download).to_have_attribute("href", f"/records/documents/{consent.pk}/v1.pdf")
    expect(download).to_have_attribute("download", "")
    response = page.request.get(download.get_attribute("href"))
    assert response.status == 200 and response.headers["content-type"] == "application/pdf"
    assert response.body() == default_store().get(consent.current_version().current_sha256)

    # --- What was recorded -------------------------------------------------------------
    ps = PatientSignature.objects.get()
    assert (ps.outcome, ps.placement, ps.witness, ps.identity) == ("signed", "page", nurse, "cccd")
    assert ps.identity_detail == patient.cccd
    assert ps.signer_name == patient.full_name and not ps.by_representative
    ev = ps.evidence
    device = ev["device"]
    assert device["pointer"] == "mouse"
    assert "Chrome" in device["user_agent"], device["user_agent"]
    assert re.fullmatch(r"\d+x\d+@\d+(\.\d+)?", device["screen"]), device["screen"]
    assert device["canvas"]["w"] == pytest.approx(box["width"], abs=1)
    assert device["canvas"]["h"] == pytest.approx(box["height"], abs=1)
    client_time = datetime.fromisoformat(ev["time"]["client"].replace("Z", "+00:00"))
    server_time = datetime.fromisoformat(ev["time"]["server"])
    assert abs((server_time - client_time).total_seconds()) < 60
    assert ev["time"]["client_tz_offset_min"] == "-420"  # Asia/Ho_Chi_Minh, UTC+7
    strokes = ev["strokes"]
    assert len(strokes) == 2, "the cleared stroke must not be sent"
    for stroke in strokes:
        assert len(stroke) >= 3
        times = [point[2] for point in stroke]
        assert times == sorted(times) and times[-1] > times[0]
        for x, y, _t, _pressure in stroke:
            assert 0 <= x <= box["width"] and 0 <= y <= box["height"]
    assert strokes[1][0][2] >= strokes[0][-1][2]  # the second stroke came after the first
    assert ev["document"]["shown_sha256"] == version.rendered_sha256
    assert "Nội soi dạ dày" in "".join(ev["text_shown"])
    assert ev["witness"]["username"] == nurse.username
    assert ev["identity"] == {"method": "cccd", "detail": patient.cccd}
    assert page.watch.problems() == []
    assert page.watch.csp_violations() == []

    # The document page now says so; the patient cannot sign twice.
    main.get_by_role("link", name=tr("Back to the document"), exact=True).click()
    expect(page).to_have_url(re.compile(rf"/records/documents/{consent.pk}/$"))
    expect(page.locator("main")).to_contain_text(patient.full_name)
    expect(page.get_by_role("link", name=tr("Sign with the patient"))).to_have_count(0)
    _sign_out(page, tr)

    # --- The doctor signs --------------------------------------------------------------
    sign_in(page, doctor, password)
    page.goto(f"/records/documents/{consent.pk}/")
    page.get_by_label(label("Signing PIN")).fill(PIN)
    page.get_by_role("button", name=tr("Sign"), exact=True).click()
    expect(_flash(page)).to_contain_text(tr("Signed."))
    expect(page.locator("h2 .tag")).to_have_text(tr(DocumentStatus.SIGNED.label))
    _sign_out(page, tr)

    # --- The records officer seals -------------------------------------------------------
    sign_in(page, records_officer, password)
    page.goto(f"/records/documents/{consent.pk}/")
    page.get_by_role("button", name=tr("Seal (facility)"), exact=True).click()
    expect(_flash(page)).to_contain_text(tr("Sealed. The document can no longer change."))
    expect(page.locator("h2 .tag")).to_have_text(tr(DocumentStatus.SEALED.label))
    consent.refresh_from_db()
    assert consent.status == DocumentStatus.SEALED
    assert page.watch.problems() == []

    # --- The sealed PDF, verified three ways -------------------------------------------------
    version = consent.current_version()
    pdf = default_store().get(version.current_sha256)
    assert pdf.startswith(default_store().get(version.rendered_sha256))  # incremental only

    report = _off_the_loop(verify_pdf, pdf)
    assert report.ok, report
    assert report.sealed and not report.changed_after_seal
    assert [s.field_name for s in report.signatures] == ["doctor", "seal"]
    assert all(s.bottom_line and s.intact and s.trusted for s in report.signatures), report

    statuses = _off_the_loop(_pyhanko_statuses, pdf, facility)
    assert [(name, kind) for name, kind, _ in statuses][:2] == [
        ("doctor", "/Sig"),
        ("seal", "/Sig"),
    ]
    for name, kind, status in statuses:
        details = (name, kind, getattr(status, "pretty_print_details", status.__repr__)())
        assert status.intact and status.valid and status.trusted, details
        if kind == "/Sig":  # a document timestamp has no "bottom line" of its own
            assert status.bottom_line and status.docmdp_ok is not False, details

    # The drawing and its evidence are inside what every signature covers.
    assert json.loads(embedded_evidence(pdf)) == ps.evidence
    assert json.loads(default_store().get(ps.evidence_sha256)) == ps.evidence

    if not (shutil.which("pdfsig") and shutil.which("certutil")):
        pytest.skip(
            "pdfsig (poppler-utils) and certutil (libnss3-tools) are not installed: "
            "the pdfsig check did not run; `make test` installs them"
        )
    out = _pdfsig(pdf, tmp_path, facility)
    blocks = {}  # field name -> what pdfsig says about that signature
    for block in re.split(r"^Signature #\d+:$", out, flags=re.M)[1:]:
        fields = dict(re.findall(r"^[ \t]*- ([^:\n]+): (.*)$", block, flags=re.M))
        blocks[fields["Signature Field Name"]] = fields
    for name in ("doctor", "seal"):
        assert blocks[name]["Signature Type"] == "ETSI.CAdES.detached", out
        assert blocks[name]["Signature Validation"] == "Signature is Valid.", out
        assert blocks[name]["Certificate Validation"] == "Certificate is Trusted.", out
    # poppler does not verify RFC 3161 document timestamps ("Signature Type: unknown",
    # "not yet been verified"); pyHanko validated that one above.
    others = [f for n, f in blocks.items() if n not in ("doctor", "seal")]
    assert all(f["Signature Validation"] != "Signature is Invalid." for f in others), out
    assert doctor.full_name in out


# --- The patient refuses ------------------------------------------------------------------


def test_refusal_is_witnessed_and_shown_on_the_document(
    page, consent, patient, nurse, password, sign_in, tr, label
):
    sign_in(page, nurse, password)
    _open_signing_page(page, consent, tr)
    refuse = page.locator("details.refuse")
    expect(refuse.locator("textarea")).to_be_hidden()
    refuse.locator("summary").click()
    expect(refuse).to_have_attribute("open", "")
    refuse.get_by_label(label("How the identity was checked")).select_option("known")
    refuse.get_by_label(label("Reason the patient gives")).fill(REFUSAL)
    refuse.get_by_role(
        "button", name=tr("Record the refusal (witnessed by me)"), exact=True
    ).click()

    expect(page).to_have_url(re.compile(rf"/records/documents/{consent.pk}/patient-signed/$"))
    expect(page.locator("main .panel.warn")).to_contain_text(REFUSAL)
    expect(page.locator("main .panel.warn")).to_contain_text(nurse.full_name)
    ps = PatientSignature.objects.get()
    assert (ps.outcome, ps.identity, ps.witness) == ("refused", "known", nurse)
    assert ps.refusal_reason == REFUSAL and ps.evidence["strokes"] == []
    assert ps.evidence["device"]["canvas"] is None

    page.get_by_role("link", name=tr("Back to the document"), exact=True).click()
    expect(page).to_have_url(re.compile(rf"/records/documents/{consent.pk}/$"))
    refused = tr(
        "The patient refused to sign (witness: %(w)s). Reason: %(r)s",
        w=nurse.full_name,
        r=REFUSAL,
    )
    expect(page.locator("main")).to_contain_text(refused)
    expect(page.get_by_role("link", name=tr("Sign with the patient"))).to_have_count(0)
    assert page.watch.problems() == []


# --- Without JavaScript -------------------------------------------------------------------


def test_without_javascript_the_pad_says_use_paper_and_refusal_still_works(
    page_without_js, consent, patient, nurse, password, sign_in, tr, label
):
    page = page_without_js
    sign_in(page, nurse, password)
    _open_signing_page(page, consent, tr)
    notice = tr(
        "Drawing a signature needs JavaScript. Without it, print the form, have it signed on "
        "paper and file it with the QR code on the form."
    )
    # (Playwright's text selectors skip <noscript>: look for the element itself.)
    expect(page.locator("noscript .panel")).to_be_visible()
    expect(page.locator("noscript .panel")).to_have_text(notice)

    # The pad and its buttons are hidden: nothing invites a signature that cannot be drawn.
    expect(page.locator("#pad")).to_be_hidden()
    expect(page.locator("#pad-submit")).to_be_hidden()
    assert not PatientSignature.objects.exists()

    # <details> opens without script; the refusal is an ordinary form post.
    refuse = page.locator("details.refuse")
    refuse.locator("summary").click()
    refuse.get_by_label(label("How the identity was checked")).select_option("known")
    refuse.get_by_label(label("Reason the patient gives")).fill(REFUSAL)
    refuse.get_by_role(
        "button", name=tr("Record the refusal (witnessed by me)"), exact=True
    ).click()
    expect(page).to_have_url(re.compile(rf"/records/documents/{consent.pk}/patient-signed/$"))
    expect(page.locator("main .panel.warn")).to_contain_text(REFUSAL)
    ps = PatientSignature.objects.get()
    assert ps.outcome == "refused" and ps.witness == nurse
    assert page.watch.bad_responses == []
    assert page.watch.problems() == []


def test_refusal_error_keeps_what_was_typed(page, consent, nurse, password, sign_in, tr, label):
    sign_in(page, nurse, password)
    _open_signing_page(page, consent, tr)
    refuse = page.locator("details.refuse")
    refuse.locator("summary").click()
    refuse.get_by_label(label("How the identity was checked")).select_option("known")
    refuse.get_by_label(label("Reason the patient gives")).fill("Ko")  # too short
    refuse.get_by_role(
        "button", name=tr("Record the refusal (witnessed by me)"), exact=True
    ).click()
    expect(refuse).to_have_attribute("open", "")
    assert not PatientSignature.objects.exists()
    message = tr("Write the reason the patient gives for refusing.")
    expect(page.get_by_text(message)).to_be_visible()
    # What the nurse typed is still there, and the error is next to it.
    expect(refuse.get_by_label(label("Reason the patient gives"))).to_have_value("Ko", timeout=1000)
    expect(refuse.get_by_label(label("How the identity was checked"))).to_have_value("known")
    expect(refuse.get_by_text(message)).to_be_visible()
