"""Signed paper filed by the QR code printed on the form (/p/<token>), through HTTP.

A form the patient signs by hand (surgical consent …) carries a second QR code: a signed,
expiring link to the upload page of exactly that document and version. Staff photograph
the signed pages there; the server makes one compact PDF, refuses pages that show the QR
code of another document or version, stamps "converted from paper" with the converter's
name, files it as the next version and seals it with the facility seal at once.
"""

from __future__ import annotations

import io
import json
import time
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.core import signing
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from scans import page_photo  # tests/scans: generated photos of text pages

from benhan.audit.chain import verify
from benhan.audit.models import AuditEvent
from benhan.records.models import Document, DocumentStatus, DocumentVersion, Record
from benhan.records.paper import paper_token, paper_url, read_paper_token
from benhan.records.storage import default_store
from benhan.signing import pki
from benhan.signing.verify import verify_pdf

CONSENT = {"procedure": "Nội soi dạ dày", "risks": "Chảy máu, thủng (hiếm gặp)"}
JS = {"HTTP_X_BENHAN_UPLOAD": "1"}
SHELF = "Hộp 7, kệ A, phòng KHTH"


@pytest.fixture(autouse=True)
def _signing_settings(settings, tmp_path):
    settings.SIGNING_PIN_KDF_COST = 10
    settings.TSA_URL = ""
    settings.DOCUMENTS_DIR = tmp_path / "documents"


@pytest.fixture(autouse=True)
def _facility_can_seal(facility):
    pki.ensure_facility_pki(facility)


# --- Photos (generated once per module: they take a moment to draw) -----------------------


@pytest.fixture(scope="module")
def photo_8mp() -> bytes:
    """An upright 8 MP phone photo of a text page (3264 × 2448 portrait)."""
    return page_photo(2448, 3264, seed=3)


@pytest.fixture(scope="module")
def photo_5mp_rotated() -> bytes:
    """A 5 MP photo stored lying on its side with EXIF orientation 6, as phones do."""
    return page_photo(1944, 2592, orientation=6, seed=4)


@pytest.fixture(scope="module")
def photo_small() -> bytes:
    return page_photo(900, 1200, seed=5)


def jpeg(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="image/jpeg")


def photographed(pdf: bytes, page: int = 0, scale: float = 2.5) -> bytes:
    """A page of a PDF as a camera would deliver it: rendered (about 4.5 MP), JPEG."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    try:
        image = doc[page].render(scale=scale).to_pil().convert("RGB")
    finally:
        doc.close()
    out = io.BytesIO()
    image.save(out, "JPEG", quality=88)
    return out.getvalue()


def pdf_text(pdf: bytes) -> str:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    try:
        return "\n".join(page.get_textpage().get_text_range() for page in doc)
    finally:
        doc.close()


def js_pdf() -> bytes:
    """A one-page PDF that runs JavaScript when opened."""
    import pikepdf

    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    pdf.Root.OpenAction = pikepdf.Dictionary(
        S=pikepdf.Name.JavaScript, JS=pikepdf.String("app.alert('hi')")
    )
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def photo_with_qr(text: str) -> bytes:
    """A phone photo of a text page with a QR code holding `text` stuck on it."""
    import segno
    from PIL import Image

    page = Image.open(io.BytesIO(page_photo(1200, 1600, seed=6, lines=20))).convert("RGB")
    buf = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buf, kind="png", scale=6, border=4)
    qr = Image.open(buf).convert("RGB")
    page.paste(qr, (page.width - qr.width - 90, page.height - qr.height - 130))
    out = io.BytesIO()
    page.save(out, "JPEG", quality=90)
    return out.getvalue()


def english(client):
    """The client, with the language switch set to English (messages in the source text)."""
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


# --- Documents ------------------------------------------------------------------------


def new_consent(client, encounter) -> Document:
    """A surgical consent created and completed through HTTP by `client`'s user."""
    r = client.post(reverse("records:encounter", args=[encounter.pk]),
                    {"form_type": "surgical_consent"})  # fmt: skip
    assert r.status_code == 302, r.content[:500]
    doc = Document.objects.filter(record__encounter=encounter).latest("pk")
    r = client.post(reverse("records:save_draft", args=[doc.pk]), {**CONSENT, "complete": "1"})
    assert r.status_code == 302, r.content[:500]
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.COMPLETED
    return doc


def amend_and_complete(client, doc: Document, *, complete: bool = True) -> None:
    r = client.post(reverse("records:amend", args=[doc.pk]),
                    {"reason": "Người bệnh đổi ý về phương pháp vô cảm"})  # fmt: skip
    assert r.status_code == 302
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.DRAFT
    if complete:
        data = {**CONSENT, "procedure": "Nội soi dạ dày, gây mê", "complete": "1"}
        r = client.post(reverse("records:save_draft", args=[doc.pk]), data)
        assert r.status_code == 302
        doc.refresh_from_db()
        assert doc.status == DocumentStatus.COMPLETED


def link(doc: Document, version: int | None = None) -> str:
    """The path of the paper QR link (what the phone opens, without the host)."""
    return reverse("paper", args=[paper_token(doc.pk, version or doc.current_version().version)])


def names(url: str) -> tuple[int, int]:
    """(document pk, version) named by a paper link (tokens made a second apart differ)."""
    ref = read_paper_token(url.rsplit("/p/", 1)[1])
    return ref.document_id, ref.version


def pdf_of(doc: Document, version: int | None = None) -> bytes:
    v = doc.versions.get(version=version) if version else doc.current_version()
    return default_store().get(v.current_sha256)


def post_paper(client, url: str, files, location: str = SHELF, key: str = "key-1", **extra):
    data = {"paper_location": location, "upload_key": key, "deskew": "on", "files": files}
    return client.post(url, data, **extra)


def assert_nothing_filed(doc: Document, versions: int = 1) -> None:
    doc.refresh_from_db()
    assert doc.status != DocumentStatus.SEALED
    assert doc.versions.count() == versions
    assert not doc.versions.filter(source="paper").exists()
    assert not AuditEvent.objects.filter(action="document.file_paper").exists()


@pytest.fixture
def consent(encounter, client_for, doctor) -> Document:
    return new_consent(client_for(doctor), encounter)


@pytest.fixture
def other_consent(register_patient, admit, doctor, khoa_noi, client_for) -> Document:
    """A consent of another patient of the same department (same facility)."""
    from benhan.encounters.models import Encounter

    p = register_patient(full_name="Trần Thị Bích", birth_year=1990, sex="F")
    admit(doctor, p, khoa_noi)
    return new_consent(client_for(doctor), Encounter.objects.get(patient=p))


# --- 1. The happy path ---------------------------------------------------------------------


def test_nurse_files_signed_photos_by_the_qr_link_and_it_is_sealed(
    consent, client_for, nurse, photo_8mp, photo_5mp_rotated, photo_small
):
    nu = client_for(nurse)
    page = nu.get(reverse("records:document", args=[consent.pk]))
    assert page.status_code == 200
    url = page.context["paper_url"]
    assert url.startswith("/p/") and names(url) == (consent.pk, 1)
    printed = paper_url(consent.pk, 1)  # what the form's second QR code holds
    assert "/p/" in printed and names(printed) == (consent.pk, 1)

    form = nu.get(url)
    assert form.status_code == 200
    assert consent.number in form.content.decode()
    assert form.context["doc"] == consent and form.context["version_no"] == 1

    files = [jpeg("IMG_0001.jpg", photo_8mp), jpeg("IMG_0002.jpg", photo_5mp_rotated),
             jpeg("IMG_0003.jpg", photo_small)]  # fmt: skip
    r = post_paper(nu, url, files, key=form.context["key"])  # plain form: no header
    assert r.status_code == 302, r.content[:2000]
    assert r["Location"] == reverse("records:document", args=[consent.pk])

    consent.refresh_from_db()
    assert consent.status == DocumentStatus.SEALED
    assert consent.versions.count() == 2
    v = consent.current_version()
    assert (v.version, v.source, v.converted_by, v.paper_location) == (2, "paper", nurse, SHELF)
    assert v.converted_at is not None and v.sealed_at is not None
    assert v.data == consent.versions.get(version=1).data  # same content as printed
    assert v.upload_key == form.context["key"]
    store = default_store()
    assert [o["name"] for o in v.originals] == ["IMG_0001.jpg", "IMG_0002.jpg", "IMG_0003.jpg"]
    assert store.get(v.originals[0]["sha256"]) == photo_8mp  # the photos as sent, kept
    assert store.get(v.originals[1]["sha256"]) == photo_5mp_rotated
    assert [o["size"] for o in v.originals] == [len(photo_8mp), len(photo_5mp_rotated),
                                                len(photo_small)]  # fmt: skip
    assert v.signatures.filter(slot="seal").count() == 1

    pdf = store.get(v.current_sha256)
    assert len(pdf) < 3 * 300_000  # compact: three A4 text pages
    report = verify_pdf(pdf)
    assert report.ok, report
    assert report.signatures and report.signatures[-1].field_name == "seal"
    text = pdf_text(pdf)
    assert text.count("Bản chuyển đổi từ hồ sơ giấy") == 3  # on every page
    assert nurse.full_name in text and consent.number in text
    # The rotated photo came out upright (portrait page).
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    try:
        sizes = [doc.get_page_size(i) for i in range(len(doc))]
    finally:
        doc.close()
    assert len(sizes) == 3 and all(h > w for w, h in sizes)

    file_event = AuditEvent.objects.get(action="document.file_paper")
    assert file_event.patient == consent.record.encounter.patient
    assert file_event.detail["paper_location"] == SHELF
    assert file_event.detail["pages"] == 3
    assert file_event.detail["printed_version"] == 1
    seal_event = AuditEvent.objects.get(action="document.seal")
    assert seal_event.detail["paper"] is True and seal_event.pk > file_event.pk
    assert verify()[1] == []

    # The document page now shows the sealed paper version, and no paper link any more.
    after = nu.get(reverse("records:document", args=[consent.pk]))
    assert after.status_code == 200 and "paper_url" not in after.context
    served = nu.get(reverse("records:pdf", args=[consent.pk, 2]))
    assert served.status_code == 200 and served.content == pdf


# --- 2. QR codes on the photographed pages ----------------------------------------------


def test_the_printed_form_carries_both_qr_codes(consent):
    from benhan.records.paper import read_page_codes

    codes = read_page_codes(pdf_of(consent))
    assert {c.lookup_code for c in codes if c.lookup_code} == {consent.lookup_code}
    assert {(c.paper.document_id, c.paper.version) for c in codes if c.paper} == {(consent.pk, 1)}


def test_a_photo_of_the_form_itself_is_accepted(consent, client_for, nurse):
    photo = photographed(pdf_of(consent))
    r = post_paper(client_for(nurse), link(consent), [jpeg("IMG_2001.jpg", photo)])
    assert r.status_code == 302, r.content[:2000]
    consent.refresh_from_db()
    assert consent.status == DocumentStatus.SEALED
    v = consent.current_version()
    assert (v.version, v.source) == (2, "paper")
    # The QR codes survived the conversion: the filed page still names this document.
    from benhan.records.paper import read_page_codes

    codes = read_page_codes(default_store().get(v.current_sha256))
    assert consent.lookup_code in {c.lookup_code for c in codes}


def test_a_page_of_another_patients_document_is_refused(
    consent, other_consent, client_for, nurse, photo_small
):
    nu = english(client_for(nurse))
    wrong = photographed(pdf_of(other_consent))
    files = [jpeg("1.jpg", photo_small), jpeg("2.jpg", wrong)]
    r = post_paper(nu, link(consent), files)
    assert r.status_code == 422
    body = r.content.decode()
    assert other_consent.number in body and consent.number in body
    assert "Page 2" in body
    assert r.context["form"].non_field_errors()
    assert r.context["key"] == "key-1"  # the page keeps the key: a retry is the same upload
    assert_nothing_filed(consent)
    assert_nothing_filed(other_consent)
    # The same with upload.js: JSON, same message.
    r = post_paper(nu, link(consent), [jpeg("2.jpg", wrong)], **JS)
    assert r.status_code == 422 and r["Content-Type"] == "application/json"
    errors = r.json()["errors"]
    assert len(errors) == 1 and other_consent.number in errors[0] and "Page 1" in errors[0]
    assert_nothing_filed(consent)


def test_a_pdf_of_another_document_is_refused_too(consent, other_consent, client_for, nurse):
    files = [SimpleUploadedFile("scan.pdf", pdf_of(other_consent), "application/pdf")]
    r = post_paper(english(client_for(nurse)), link(consent), files)
    assert r.status_code == 422
    assert other_consent.number in r.content.decode()
    assert_nothing_filed(consent)


def test_a_page_of_an_older_version_is_refused(consent, client_for, doctor, nurse):
    old = photographed(pdf_of(consent, 1))
    amend_and_complete(client_for(doctor), consent)
    assert consent.current_version().version == 2
    nu = english(client_for(nurse))
    r = post_paper(nu, link(consent, 2), [jpeg("old.jpg", old)])
    assert r.status_code == 422
    body = r.content.decode()
    assert "Page 1" in body and "version 1" in body and "version 2" in body
    assert_nothing_filed(consent, versions=2)
    # The page of the version printed now is accepted.
    new = photographed(pdf_of(consent, 2))
    r = post_paper(nu, link(consent, 2), [jpeg("new.jpg", new)], key="key-2")
    assert r.status_code == 302, r.content[:2000]
    consent.refresh_from_db()
    assert consent.status == DocumentStatus.SEALED
    assert consent.current_version().version == 3
    assert AuditEvent.objects.get(action="document.file_paper").detail["printed_version"] == 2


def test_qr_codes_that_are_not_ours_are_ignored(consent, client_for, nurse):
    bank = "https://img.vietqr.io/image/970436-0123456789.png"  # a payment QR on the page
    ours = f"https://benhan.example.vn/v/{consent.lookup_code}"  # this document's own code
    files = [jpeg("1.jpg", photo_with_qr(bank)), jpeg("2.jpg", photo_with_qr(ours))]
    r = post_paper(client_for(nurse), link(consent), files)
    assert r.status_code == 302, r.content[:2000]
    consent.refresh_from_db()
    assert consent.status == DocumentStatus.SEALED


def test_a_lookup_code_unknown_here_is_refused(consent, client_for, nurse):
    files = [jpeg("1.jpg", photo_with_qr("https://benhan.example.vn/v/ZZZZ-9999"))]
    r = post_paper(english(client_for(nurse)), link(consent), files)
    assert r.status_code == 422
    body = r.content.decode()
    assert "ZZZZ-9999" in body and "Page 1" in body
    assert_nothing_filed(consent)


def test_a_paper_qr_of_another_document_on_a_page_is_refused(consent, other_consent, client_for,
                                                             nurse):  # fmt: skip
    files = [jpeg("1.jpg", photo_with_qr(paper_url(other_consent.pk, 1)))]
    r = post_paper(english(client_for(nurse)), link(consent), files)
    assert r.status_code == 422
    assert other_consent.number in r.content.decode()
    assert_nothing_filed(consent)
    assert_nothing_filed(other_consent)


# --- 3. The link itself -------------------------------------------------------------------


def _forged(token: str) -> str:
    """The token with one character of its signature changed."""
    value, ts, sig = token.rsplit(":", 2)
    i = len(sig) // 2
    return f"{value}:{ts}:{sig[:i]}{'B' if sig[i] != 'B' else 'C'}{sig[i + 1 :]}"


def _old_token(doc: Document, version: int, days: int) -> str:
    then = int(time.time()) - days * 86400
    with mock.patch.object(
        signing.TimestampSigner, "timestamp", lambda self: signing.b62_encode(then)
    ):
        return paper_token(doc.pk, version)


def test_a_forged_or_damaged_token_is_refused(consent, client_for, nurse, photo_small):
    nu = english(client_for(nurse))
    token = paper_token(consent.pk, 1)
    _value, ts, sig = token.rsplit(":", 2)
    bad = [
        _forged(token),  # one character of the signature changed
        f"{consent.pk + 1}.1:{ts}:{sig}",  # pointed at another document
        f"{consent.pk}.2:{ts}:{sig}",  # … or another version
        token[:-5],  # cut short
        "garbage",
        signing.TimestampSigner(salt="another.salt").sign(f"{consent.pk}.1"),
    ]
    for t in bad:
        r = nu.get(reverse("paper", args=[t]))
        assert r.status_code == 400, t
        assert "not made by this system" in r.content.decode()
        assert "records/link_refused.html" in [tpl.name for tpl in r.templates]
        r = post_paper(nu, reverse("paper", args=[t]), [jpeg("1.jpg", photo_small)])
        assert r.status_code == 400, t
        r = post_paper(nu, reverse("paper", args=[t]), [jpeg("1.jpg", photo_small)], **JS)
        assert r.status_code == 400 and len(r.json()["errors"]) == 1
    refused = AuditEvent.objects.filter(action="paper.link_refused")
    assert refused.count() == 3 * len(bad)
    assert {e.detail["why"] for e in refused} == {"invalid"}
    assert refused.filter(detail__token="garbage").exists()
    assert_nothing_filed(consent)
    assert verify()[1] == []


def test_an_expired_token_is_refused_with_a_way_on(settings, consent, client_for, nurse,
                                                    photo_small):  # fmt: skip
    settings.PAPER_QR_DAYS = 90
    nu = english(client_for(nurse))
    old = reverse("paper", args=[_old_token(consent, 1, days=91)])
    r = nu.get(old)
    assert r.status_code == 410
    body = r.content.decode()
    assert "expired" in body
    assert reverse("records:document", args=[consent.pk]) in body  # the way on
    r = post_paper(nu, old, [jpeg("1.jpg", photo_small)])
    assert r.status_code == 410
    r = post_paper(nu, old, [jpeg("1.jpg", photo_small)], **JS)
    assert r.status_code == 410 and "expired" in r.json()["errors"][0]
    events = AuditEvent.objects.filter(action="paper.link_refused")
    assert events.count() == 3
    assert all(e.detail == {"why": "expired", "document": consent.pk} for e in events)
    assert_nothing_filed(consent)
    # 89 days old is still fine.
    assert nu.get(reverse("paper", args=[_old_token(consent, 1, days=89)])).status_code == 200


def test_an_expired_token_does_not_show_the_document_link_to_another_facility(
    consent, client_for, other_facility_doctor
):
    old = reverse("paper", args=[_old_token(consent, 1, days=400)])
    r = client_for(other_facility_doctor).get(old)
    assert r.status_code in (403, 410)
    assert reverse("records:document", args=[consent.pk]) not in r.content.decode()


@pytest.fixture
def foreign_consent(other_patient, client_for, other_facility_doctor) -> Document:
    from benhan.encounters.models import Encounter

    encounter = Encounter.objects.get(patient=other_patient)
    return new_consent(client_for(other_facility_doctor), encounter)


def test_a_document_of_another_facility_is_refused(
    consent, foreign_consent, client_for, nurse, photo_small
):
    nu = client_for(nurse)
    url = link(foreign_consent)
    r = nu.get(url)
    assert r.status_code == 403
    assert "Nguyễn Văn An" not in r.content.decode()  # nothing about the other patient
    r = post_paper(nu, url, [jpeg("1.jpg", photo_small)])
    assert r.status_code == 403
    assert_nothing_filed(foreign_consent)
    assert_nothing_filed(consent)
    events = AuditEvent.objects.filter(action="paper.link_refused")
    assert {e.detail["why"] for e in events} == {"facility"} and events.count() == 2


def test_a_link_to_a_missing_document_is_404(client_for, nurse, consent):
    r = client_for(nurse).get(reverse("paper", args=[paper_token(consent.pk + 99, 1)]))
    assert r.status_code == 404


@pytest.mark.parametrize("who", ["receptionist", "lab_tech", "admin"])
def test_roles_that_do_not_file_paper_are_refused(who, request, consent, client_for,
                                                  photo_small):  # fmt: skip
    client = client_for(request.getfixturevalue(who))
    url = link(consent)
    assert client.get(url).status_code == 403
    assert post_paper(client, url, [jpeg("1.jpg", photo_small)]).status_code == 403
    assert post_paper(client, url, [jpeg("1.jpg", photo_small)], **JS).status_code == 403
    assert_nothing_filed(consent)


def test_records_officer_and_doctor_may_file(consent, client_for, records_officer, doctor):
    assert client_for(records_officer).get(link(consent)).status_code == 200
    assert client_for(doctor).get(link(consent)).status_code == 200


def test_signed_out_user_is_sent_to_sign_in(consent, client, photo_small):
    url = link(consent)
    r = client.get(url)
    assert r.status_code == 302 and reverse("accounts:login") in r["Location"]
    r = post_paper(client, url, [jpeg("1.jpg", photo_small)])
    assert r.status_code == 302 and reverse("accounts:login") in r["Location"]
    assert_nothing_filed(consent)


def test_doctor_of_another_department_must_break_the_glass(
    consent, client_for, outsider_doctor, photo_small
):
    out = client_for(outsider_doctor)
    url = link(consent)
    r = out.get(url)
    assert r.status_code == 403
    assert "403_break_glass.html" in [t.name for t in r.templates]
    r = post_paper(out, url, [jpeg("1.jpg", photo_small)])
    assert r.status_code == 403
    assert_nothing_filed(consent)
    # With a reason, the glass is broken and the upload page opens.
    patient = consent.record.encounter.patient
    r = out.post(reverse("patients:break_glass", args=[patient.pk]),
                 {"reason": "Cấp cứu ngoại khoa, cần hồ sơ gốc", "next": url})  # fmt: skip
    assert r.status_code == 302 and r["Location"] == url
    assert out.get(url).status_code == 200


# --- 4. The document's state -------------------------------------------------------------


def test_a_sealed_document_is_refused(consent, client_for, nurse, photo_small):
    nu = english(client_for(nurse))
    url = link(consent)
    assert post_paper(nu, url, [jpeg("1.jpg", photo_small)]).status_code == 302
    consent.refresh_from_db()
    assert consent.status == DocumentStatus.SEALED
    r = nu.get(url)
    assert r.status_code == 409 and "already sealed" in r.content.decode()
    r = post_paper(nu, url, [jpeg("1.jpg", photo_small)], key="another-upload")
    assert r.status_code == 409
    r = post_paper(nu, url, [jpeg("1.jpg", photo_small)], key="a-third-upload", **JS)
    assert r.status_code == 409 and "already sealed" in r.json()["errors"][0]
    assert consent.versions.count() == 2
    assert AuditEvent.objects.filter(action="document.file_paper").count() == 1


def test_a_link_to_a_version_since_replaced_is_refused(consent, client_for, doctor, nurse,
                                                       photo_small):  # fmt: skip
    v1 = link(consent, 1)
    amend_and_complete(client_for(doctor), consent)
    nu = english(client_for(nurse))
    r = nu.get(v1)
    assert r.status_code == 409
    body = r.content.decode()
    assert "version 1" in body and "version 2" in body
    r = post_paper(nu, v1, [jpeg("1.jpg", photo_small)], **JS)
    assert r.status_code == 409 and "version 2" in r.json()["errors"][0]
    assert_nothing_filed(consent, versions=2)
    # The document page offers the link of the current version instead.
    offered = nu.get(reverse("records:document", args=[consent.pk])).context["paper_url"]
    assert names(offered) == (consent.pk, 2)


def test_a_version_that_never_existed_is_refused(consent, client_for, nurse):
    r = client_for(nurse).get(link(consent, 5))
    assert r.status_code == 409
    assert_nothing_filed(consent)


def test_paper_of_a_document_signed_by_staff_is_filed_and_sealed(consent, client_for, doctor,
                                                                 nurse, photo_small):  # fmt: skip
    pki.issue_staff_credential(doctor, "246810")
    client_for(doctor).post(reverse("records:sign", args=[consent.pk]), {"pin": "246810"})
    consent.refresh_from_db()
    assert consent.status == DocumentStatus.SIGNED
    nu = client_for(nurse)
    url = nu.get(reverse("records:document", args=[consent.pk])).context["paper_url"]
    r = post_paper(nu, url, [jpeg("1.jpg", photo_small)])
    assert r.status_code == 302, r.content[:2000]
    consent.refresh_from_db()
    assert consent.status == DocumentStatus.SEALED
    assert consent.versions.get(version=1).signatures.filter(slot="doctor").exists()
    v = consent.current_version()
    assert v.source == "paper" and verify_pdf(default_store().get(v.current_sha256)).ok


def test_a_document_being_amended_is_refused(consent, client_for, doctor, nurse, photo_small):
    amend_and_complete(client_for(doctor), consent, complete=False)
    nu = english(client_for(nurse))
    r = nu.get(link(consent, 1))
    assert r.status_code == 409 and "being amended" in r.content.decode()
    r = post_paper(nu, link(consent, 1), [jpeg("1.jpg", photo_small)])
    assert r.status_code == 409
    consent.refresh_from_db()
    assert consent.status == DocumentStatus.DRAFT
    assert_nothing_filed(consent)


def test_a_closed_record_is_refused(consent, client_for, nurse, photo_small):
    Record.objects.filter(pk=consent.record_id).update(status="closed")
    nu = english(client_for(nurse))
    r = nu.get(link(consent))
    assert r.status_code == 409 and "closed" in r.content.decode()
    r = post_paper(nu, link(consent), [jpeg("1.jpg", photo_small)], **JS)
    assert r.status_code == 409 and "closed" in r.json()["errors"][0]
    assert_nothing_filed(consent)


# --- 5. Bad input -------------------------------------------------------------------------


def test_no_files_is_refused(consent, client_for, nurse):
    nu = english(client_for(nurse))
    r = nu.post(link(consent), {"paper_location": SHELF, "upload_key": "k"})
    assert r.status_code == 422
    assert "Photograph the pages" in r.content.decode()
    r = nu.post(link(consent), {"paper_location": SHELF, "upload_key": "k"}, **JS)
    assert r.status_code == 422 and "Photograph the pages" in r.json()["errors"][0]
    assert_nothing_filed(consent)


@pytest.mark.parametrize("location", ["", "   "])
def test_the_paper_location_is_required(location, consent, client_for, nurse, photo_small):
    nu = client_for(nurse)
    r = post_paper(nu, link(consent), [jpeg("1.jpg", photo_small)], location=location)
    assert r.status_code == 422
    assert r.context["form"].errors.get("paper_location")
    r = post_paper(nu, link(consent), [jpeg("1.jpg", photo_small)], location=location, **JS)
    assert r.status_code == 422 and len(r.json()["errors"]) == 1
    assert_nothing_filed(consent)


def test_a_very_long_paper_location_is_refused(consent, client_for, nurse, photo_small):
    r = post_paper(client_for(nurse), link(consent), [jpeg("1.jpg", photo_small)],
                   location="x" * 201)  # fmt: skip
    assert r.status_code == 422 and r.context["form"].errors.get("paper_location")
    assert_nothing_filed(consent)


@pytest.mark.parametrize(
    ("name", "payload", "expect"),
    [
        ("notes.jpg", "Ghi chú: đây không phải ảnh.\n".encode() * 20, "Not an image"),
        ("cut.jpg", page_photo(600, 800)[:3000], "Page 2"),
        ("script.pdf", None, "This PDF is refused"),
        ("empty.jpg", b"", ""),
    ],
    ids=["text-as-jpg", "truncated-jpeg", "pdf-with-javascript", "empty-file"],
)
def test_bad_files_are_refused_clearly(name, payload, expect, consent, client_for, nurse,
                                       photo_small):  # fmt: skip
    if payload is None:
        files = [SimpleUploadedFile(name, js_pdf(), "application/pdf")]
    elif name == "cut.jpg":
        files = [jpeg("good.jpg", photo_small), jpeg(name, payload)]
    else:
        files = [jpeg(name, payload)]
    nu = english(client_for(nurse))
    r = post_paper(nu, link(consent), files)
    assert r.status_code == 422, r.content[:1000]
    assert r.context["form"].non_field_errors()
    assert expect in r.content.decode()
    for f in files:
        f.seek(0)
    r = post_paper(nu, link(consent), files, **JS)
    assert r.status_code == 422
    errors = r.json()["errors"]
    assert len(errors) == 1 and expect in errors[0]
    assert_nothing_filed(consent)


def test_a_pdf_and_a_photo_together_are_refused(consent, client_for, nurse, photo_small):
    files = [jpeg("1.jpg", photo_small),
             SimpleUploadedFile("2.pdf", pdf_of(consent), "application/pdf")]  # fmt: skip
    r = post_paper(english(client_for(nurse)), link(consent), files)
    assert r.status_code == 422 and "Page 2" in r.content.decode()
    assert_nothing_filed(consent)


def test_a_clean_pdf_is_filed_and_sealed(consent, client_for, nurse):
    files = [SimpleUploadedFile("scan.pdf", pdf_of(consent), "application/pdf")]
    r = post_paper(client_for(nurse), link(consent), files, **JS)
    assert r.status_code == 200, r.content[:1000]
    assert r.json() == {"redirect": reverse("records:document", args=[consent.pk])}
    consent.refresh_from_db()
    assert consent.status == DocumentStatus.SEALED
    v = consent.current_version()
    assert v.source == "paper" and v.originals[0]["name"] == "scan.pdf"
    pdf = default_store().get(v.current_sha256)
    assert verify_pdf(pdf).ok
    assert "Bản chuyển đổi từ hồ sơ giấy" in pdf_text(pdf)


def test_the_upload_is_not_too_large(consent, client_for, nurse, photo_small):
    from benhan.records import views

    with mock.patch.object(views, "MAX_UPLOAD_BYTES", 1000):
        r = post_paper(client_for(nurse), link(consent), [jpeg("1.jpg", photo_small)], **JS)
    assert r.status_code == 422 and len(r.json()["errors"]) == 1
    assert_nothing_filed(consent)


# --- 6. Resent uploads and the JSON answers ----------------------------------------------------


def test_a_resent_upload_is_filed_once(consent, client_for, nurse, photo_small):
    nu = client_for(nurse)
    url = link(consent)
    first = post_paper(nu, url, [jpeg("1.jpg", photo_small)], key="phone-1", **JS)
    assert first.status_code == 200
    assert first.json() == {"redirect": reverse("records:document", args=[consent.pk])}
    post_paper(nu, url, [jpeg("1.jpg", photo_small)], key="phone-1", **JS)
    post_paper(nu, url, [jpeg("1.jpg", photo_small)], key="phone-1")
    assert consent.versions.count() == 2
    assert DocumentVersion.objects.filter(upload_key="phone-1").count() == 1
    assert AuditEvent.objects.filter(action="document.file_paper").count() == 1
    assert AuditEvent.objects.filter(action="document.seal").count() == 1


def test_a_resent_upload_is_answered_like_the_first(consent, client_for, nurse, photo_small):
    nu = client_for(nurse)
    url = link(consent)
    done = {"redirect": reverse("records:document", args=[consent.pk])}
    first = post_paper(nu, url, [jpeg("1.jpg", photo_small)], key="phone-1", **JS)
    assert (first.status_code, first.json()) == (200, done)
    again = post_paper(nu, url, [jpeg("1.jpg", photo_small)], key="phone-1", **JS)
    assert (again.status_code, again.json()) == (200, done)
    plain = post_paper(nu, url, [jpeg("1.jpg", photo_small)], key="phone-1")
    assert plain.status_code == 302 and plain["Location"] == done["redirect"]


def test_json_answers_on_refusal(consent, client_for, nurse):
    r = client_for(nurse).post(link(consent), {"upload_key": "k"}, **JS)
    assert r.status_code == 422
    assert r["Content-Type"] == "application/json"
    body = json.loads(r.content)
    assert set(body) == {"errors"}
    assert isinstance(body["errors"], list) and body["errors"]
    assert all(isinstance(m, str) and m for m in body["errors"])


def test_an_upload_key_of_another_document_does_not_pass_for_this_one(
    consent, other_consent, client_for, nurse, photo_small
):
    nu = client_for(nurse)
    assert post_paper(nu, link(other_consent), [jpeg("1.jpg", photo_small)],
                      key="same").status_code == 302  # fmt: skip
    r = post_paper(nu, link(consent), [jpeg("1.jpg", photo_small)], key="same")
    consent.refresh_from_db()
    if r.status_code == 302:  # answered as filed: then it must be filed
        assert consent.status == DocumentStatus.SEALED
    else:
        assert r.status_code in (409, 422)


# --- 7. The page without JavaScript ---------------------------------------------------------


def test_the_upload_page_is_a_plain_multipart_form(consent, client_for, nurse):
    from html.parser import HTMLParser

    class Inputs(HTMLParser):
        def __init__(self):
            super().__init__()
            self.forms, self.inputs = [], []

        def handle_starttag(self, tag, attrs):
            if tag == "form":
                self.forms.append(dict(attrs))
            elif tag in ("input", "textarea", "select"):
                self.inputs.append(dict(attrs))

    nu = client_for(nurse)
    r = nu.get(link(consent))
    assert r.status_code == 200
    parsed = Inputs()
    parsed.feed(r.content.decode())
    posts = [f for f in parsed.forms if f.get("method") == "post" and "data-upload" in f]
    assert len(posts) == 1
    assert posts[0]["enctype"] == "multipart/form-data"
    assert posts[0].get("action") in (None, "")  # posts back to the link itself
    files = [i for i in parsed.inputs if i.get("type") == "file"]
    assert [i["name"] for i in files] == ["files", "files"]
    assert all("multiple" in i for i in files)
    assert [i.get("capture") for i in files] == ["environment", None]
    assert "application/pdf" in files[1]["accept"]
    key = [i for i in parsed.inputs if i.get("name") == "upload_key"]
    assert len(key) == 1 and key[0]["type"] == "hidden" and key[0]["value"] == r.context["key"]
    assert len(r.context["key"]) >= 16
    assert any(i.get("name") == "paper_location" for i in parsed.inputs)
    assert any(i.get("name") == "csrfmiddlewaretoken" for i in parsed.inputs)
    assert nu.get(link(consent)).context["key"] != r.context["key"]  # one key per page


def test_the_plain_form_enforces_csrf(consent, nurse, photo_small):
    from django.test import Client

    c = Client(enforce_csrf_checks=True)
    c.force_login(nurse, backend="django.contrib.auth.backends.ModelBackend")
    r = post_paper(c, link(consent), [jpeg("1.jpg", photo_small)])
    assert r.status_code == 403
    assert_nothing_filed(consent)


# --- 8. The other upload form (scans of outside paper) with upload.js ---------------------


def _scan(client, encounter, files, fields=(), **extra):
    data = {"kind": "referral", "title": "Giấy chuyển tuyến", "document_date": "20/11/2026",
            "paper_location": "Hộp 12, kệ B", "upload_key": "scan-1", "files": files,
            **dict(fields)}  # fmt: skip
    return client.post(reverse("records:file_scan", args=[encounter.pk]), data, **extra)


def test_file_scan_answers_upload_js_in_json(client_for, nurse, encounter, photo_small):
    from benhan.records.models import ScannedDocument

    nu = english(client_for(nurse))
    r = _scan(nu, encounter, [jpeg("1.jpg", photo_small)], **JS)
    assert r.status_code == 200 and r["Content-Type"] == "application/json"
    assert r.json() == {"redirect": reverse("records:encounter", args=[encounter.pk])}
    assert ScannedDocument.objects.count() == 1
    bad = [jpeg("bad.jpg", b"not a picture at all")]
    r = _scan(nu, encounter, bad, {"upload_key": "scan-2"}, **JS)
    assert r.status_code == 422 and r["Content-Type"] == "application/json"
    errors = r.json()["errors"]
    assert len(errors) == 1 and "Not an image" in errors[0]
    assert ScannedDocument.objects.count() == 1


def test_file_scan_answers_an_invalid_form_in_json(client_for, nurse, encounter, photo_small):
    from benhan.records.models import ScannedDocument

    r = _scan(client_for(nurse), encounter, [jpeg("1.jpg", photo_small)], {"title": ""}, **JS)
    assert r.status_code == 422
    assert r["Content-Type"] == "application/json" and r.json()["errors"]
    assert not ScannedDocument.objects.exists()


def test_file_scan_key_of_another_patient_does_not_pass(
    client_for, nurse, encounter, register_patient, admit, doctor, khoa_noi, photo_small
):
    from benhan.encounters.models import Encounter
    from benhan.records.models import ScannedDocument

    p = register_patient(full_name="Trần Thị Bích", birth_year=1990, sex="F")
    admit(doctor, p, khoa_noi)
    second = Encounter.objects.get(patient=p)
    nu = client_for(nurse)
    assert _scan(nu, encounter, [jpeg("1.jpg", photo_small)]).status_code == 302
    r = _scan(nu, second, [jpeg("1.jpg", photo_small)], **JS)  # same upload_key
    if r.status_code == 200:  # answered as filed: then it must be in this patient's record
        assert ScannedDocument.objects.filter(record__encounter=second).exists()
    else:
        assert r.status_code in (409, 422)
