"""A record through HTTP: create, fill in, complete, sign twice, seal, close; amend;
the refusals on the way; the public lookup page; the command line."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone, translation

from benhan.audit.chain import Actor, verify
from benhan.audit.models import AuditEvent
from benhan.encounters.actions import do_discharge, do_set_diagnoses
from benhan.records.models import Document, DocumentStatus, Record
from benhan.records.storage import default_store
from benhan.signing import pki
from benhan.signing.verify import verify_pdf

PIN = "246810"
FIELDS = {"treatment": "Kháng sinh Ceftriaxon 2 g/ngày × 7 ngày", "notes": "Tái khám sau 2 tuần"}


@pytest.fixture(autouse=True)
def _signing_settings(settings, tmp_path):
    settings.SIGNING_PIN_KDF_COST = 10
    settings.TSA_URL = ""
    settings.DOCUMENTS_DIR = tmp_path / "documents"


@pytest.fixture
def head_doctor(make_user, khoa_noi):
    return make_user("bs.truongkhoa", "doctor", [khoa_noi], full_name="Hoàng Thị Lan")


@pytest.fixture
def credentials(facility, doctor, head_doctor):
    pki.ensure_facility_pki(facility)
    pki.issue_staff_credential(doctor, PIN)
    pki.issue_staff_credential(head_doctor, PIN)


def _new_document(client, encounter, form="discharge_paper") -> Document:
    r = client.post(reverse("records:encounter", args=[encounter.pk]), {"form_type": form})
    assert r.status_code == 302, r.content[:500]
    return Document.objects.latest("pk")


def _complete(client, doc, fields=FIELDS):
    r = client.post(reverse("records:save_draft", args=[doc.pk]), {**fields, "complete": "1"})
    assert r.status_code == 302
    doc.refresh_from_db()
    return doc


def _sign(client, doc, pin=PIN):
    r = client.post(reverse("records:sign", args=[doc.pk]), {"pin": pin}, follow=True)
    doc.refresh_from_db()
    return [str(m) for m in r.context["messages"]]


@pytest.fixture
def sealed(discharged, credentials, client_for, doctor, head_doctor, records_officer):
    doc = _new_document(client_for(doctor), discharged)
    _complete(client_for(doctor), doc)
    _sign(client_for(doctor), doc)
    _sign(client_for(head_doctor), doc)
    client_for(records_officer).post(reverse("records:seal", args=[doc.pk]))
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.SEALED
    return doc


def test_it_takes_a_discharge_paper_from_draft_to_stored(
    discharged, credentials, client_for, doctor, head_doctor, records_officer, tmp_path
):
    """The whole path: each state in turn, the PDF signed twice and sealed, verified."""
    dr = client_for(doctor)
    doc = _new_document(dr, discharged)
    assert doc.status == DocumentStatus.DRAFT
    assert doc.draft["diagnosis"].startswith("J18.9")  # pre-filled from the encounter

    # Autosave through htmx answers with a small fragment and keeps the values.
    r = dr.post(reverse("records:save_draft", args=[doc.pk]), {"treatment": "Kháng sinh"},
                HTTP_HX_REQUEST="true")  # fmt: skip
    assert r.status_code == 200 and len(r.content) < 5000
    doc.refresh_from_db()
    assert doc.draft["treatment"] == "Kháng sinh"

    doc = _complete(dr, doc)
    assert doc.status == DocumentStatus.COMPLETED
    version = doc.current_version()
    assert default_store().get(version.rendered_sha256)[:5] == b"%PDF-"

    assert _sign(dr, doc) == ["Signed."] or doc.status == DocumentStatus.COMPLETED
    assert doc.status == DocumentStatus.COMPLETED  # the head of department still signs
    _sign(client_for(head_doctor), doc)
    assert doc.status == DocumentStatus.SIGNED

    r = client_for(records_officer).post(reverse("records:seal", args=[doc.pk]))
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.SEALED

    pdf = default_store().get(doc.current_version().current_sha256)
    report = verify_pdf(pdf)
    assert report.ok, report.as_dict()
    assert [s.is_seal for s in report.signatures] == [False, False, True]

    rec = doc.record
    r = client_for(records_officer).post(reverse("records:close", args=[rec.pk]))
    rec.refresh_from_db()
    assert rec.status == "closed"
    assert rec.retention_class == "ordinary"
    assert rec.retain_until.year == timezone.localtime(discharged.ended_at).year + 10
    assert (rec.retain_until.month, rec.retain_until.day) == (12, 31)

    # The command line sees it, and exports the sealed PDF with a manifest.
    call_command("records", "export", rec.number, "--out", str(tmp_path / "out"))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["exported"][0]["sha256"] == doc.current_version().current_sha256
    assert verify()[1] == []


def test_it_lists_sealed_records_as_json(sealed, capsys):
    call_command("records", "list", "--status", "sealed", "--json")
    rows = json.loads(capsys.readouterr().out)
    assert [r["number"] for r in rows] == [sealed.record.number]
    assert rows[0]["documents"][0]["versions"][0]["sha256"]


def test_it_refuses_to_complete_with_missing_fields(discharged, credentials, client_for, doctor):
    dr = client_for(doctor)
    doc = _new_document(dr, discharged)
    r = dr.post(reverse("records:save_draft", args=[doc.pk]),
                {"treatment": "", "complete": "1"}, follow=True)  # fmt: skip
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.DRAFT
    assert not doc.versions.exists()
    from django.utils.translation import gettext

    with translation.override("vi"):
        required = gettext("Fill in this field to complete the document.")
    assert any(required in str(m) for m in r.context["messages"])


def test_it_refuses_signing_a_draft(discharged, credentials, client_for, doctor):
    dr = client_for(doctor)
    doc = _new_document(dr, discharged)
    messages = _sign(dr, doc)
    assert doc.status == DocumentStatus.DRAFT
    assert messages and "Signed." not in messages


def test_it_counts_wrong_pins_and_locks(discharged, credentials, client_for, doctor):
    dr = client_for(doctor)
    doc = _complete(dr, _new_document(dr, discharged))
    for _ in range(5):
        _sign(dr, doc, pin="111111")
    assert pki.active_credential(doctor).locked_at is not None
    _sign(dr, doc)  # the right PIN no longer helps
    assert not doc.current_version().signatures.exists()


def test_it_keeps_the_signing_order(discharged, credentials, client_for, head_doctor, doctor):
    """The head of department cannot sign before the attending doctor."""
    doc = _complete(client_for(doctor), _new_document(client_for(doctor), discharged))
    _sign(client_for(head_doctor), doc)
    assert not doc.current_version().signatures.exists()


def test_it_lets_only_the_records_office_seal(sealed, discharged, client_for, doctor):
    r = client_for(doctor).post(reverse("records:seal", args=[sealed.pk]))
    assert r.status_code == 403


def test_it_refuses_any_signature_after_the_seal(sealed, client_for, doctor):
    before = sealed.current_version().current_sha256
    _sign(client_for(doctor), sealed)
    assert sealed.current_version().current_sha256 == before


def test_it_amends_a_sealed_document_into_a_new_version(sealed, client_for, doctor):
    """The sealed version stays; the amendment is a new version with its reason."""
    dr = client_for(doctor)
    first = sealed.current_version()
    r = dr.post(reverse("records:amend", args=[sealed.pk]), {"reason": "Sửa liều kháng sinh"})
    assert r.status_code == 302
    sealed.refresh_from_db()
    assert sealed.status == DocumentStatus.DRAFT
    doc = _complete(dr, sealed, {**FIELDS, "treatment": "Ceftriaxon 1 g/ngày"})
    assert doc.current_version().version == 2
    assert doc.current_version().amendment_reason == "Sửa liều kháng sinh"
    # Version 1 is still there, sealed and valid.
    assert verify_pdf(default_store().get(first.current_sha256)).ok
    r = dr.get(reverse("records:pdf", args=[doc.pk, 1]))
    assert r.status_code == 200 and r["Content-Type"] == "application/pdf"


def test_it_refuses_a_short_amendment_reason(sealed, client_for, doctor):
    client_for(doctor).post(reverse("records:amend", args=[sealed.pk]), {"reason": "sửa"})
    sealed.refresh_from_db()
    assert sealed.status == DocumentStatus.SEALED


def test_it_shows_the_public_lookup_without_clinical_content(sealed, client_for):
    r = client_for(None).get(reverse("lookup", args=[sealed.lookup_code]))
    assert r.status_code == 200
    html = r.content.decode()
    assert sealed.number in html and sealed.record.number in html
    assert r.context["report"].ok
    assert "Ceftriaxon" not in html  # no clinical content for an anonymous visitor
    assert sealed.record.encounter.patient.full_name not in html


def test_it_never_serves_a_changed_file_as_valid(sealed, client_for, doctor, settings):
    """A stored PDF changed on disk is detected on read and not served."""
    path = next((settings.DOCUMENTS_DIR).rglob(sealed.current_version().current_sha256))
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[500] ^= 0x01
    path.write_bytes(bytes(data))
    r = client_for(doctor).get(
        reverse("records:pdf", args=[sealed.pk, sealed.current_version().version])
    )
    assert r.status_code == 500
    assert r["Content-Type"].startswith("text/html")
    r = client_for(None).get(reverse("lookup", args=[sealed.lookup_code]))
    assert r.context["corrupt"] is True


@pytest.mark.parametrize("who", ["receptionist", "outsider_doctor", "admin", "lab_tech"])
def test_it_refuses_the_document_to_those_without_access(who, sealed, client_for, request):
    user = request.getfixturevalue(who)
    r = client_for(user).get(reverse("records:document", args=[sealed.pk]))
    assert r.status_code == 403


def test_it_lets_the_records_officer_read_but_not_edit(sealed, client_for, records_officer):
    client = client_for(records_officer)
    assert client.get(reverse("records:document", args=[sealed.pk])).status_code == 200
    r = client.post(reverse("records:amend", args=[sealed.pk]), {"reason": "x" * 20})
    assert r.status_code == 403


def test_it_audits_document_views(sealed, client_for, records_officer):
    client_for(records_officer).get(reverse("records:document", args=[sealed.pk]))
    event = AuditEvent.objects.filter(action="document.view").latest("seq")
    assert event.actor == records_officer
    assert event.patient_id == sealed.record.encounter.patient_id


def test_it_counts_records_on_the_dashboard(sealed, client_for, records_officer):
    r = client_for(records_officer).get(reverse("records:dashboard"))
    assert r.status_code == 200
    assert r.context["total"] == [1, 1, 1, 1, 0]  # created, completed, signed, sealed, stored
    csv = client_for(records_officer).get(reverse("records:dashboard") + "?format=csv")
    assert b"total,,1,1,1,1,0" in csv.content


def test_it_lists_documents_waiting_for_my_signature(
    discharged, credentials, client_for, doctor, head_doctor
):
    doc = _complete(client_for(doctor), _new_document(client_for(doctor), discharged))
    r = client_for(doctor).get(reverse("records:my_work"))
    assert [d.pk for d, _ in r.context["waiting"]] == [doc.pk]
    _sign(client_for(doctor), doc)
    r = client_for(doctor).get(reverse("records:my_work"))
    assert r.context["waiting"] == []
    r = client_for(head_doctor).get(reverse("records:my_work"))
    assert [d.pk for d, _ in r.context["waiting"]] == [doc.pk]


def test_it_records_one_record_per_encounter(discharged, credentials, client_for, doctor):
    dr = client_for(doctor)
    _new_document(dr, discharged)
    _new_document(dr, discharged, "surgical_consent")
    assert Record.objects.count() == 1
    assert [d.number[-2:] for d in Document.objects.order_by("pk")] == ["01", "02"]


def test_it_takes_an_outpatient_record_to_stored(
    register_patient, admit, doctor, khoa_noi, icd10, credentials, client_for, records_officer
):
    """The outpatient path: one doctor signs, the records office seals and closes."""
    patient = register_patient(full_name="Lê Văn Tám", birth_year=1960, sex="M")
    visit = admit(doctor, patient, khoa_noi, kind="outpatient")
    visit.attending = doctor
    visit.save(update_fields=["attending"])
    do_set_diagnoses(Actor(doctor), visit, main=icd10("I10"), secondary=[])
    do_discharge(Actor(doctor), visit, ended_at=timezone.now() - timedelta(minutes=1),
                 outcome="2", discharge_type="1")  # fmt: skip
    dr = client_for(doctor)
    doc = _new_document(dr, visit, "outpatient_record")
    assert doc.draft["reason"] == visit.reason
    doc = _complete(dr, doc, {"history": "Đau đầu 2 ngày", "examination": "HA 160/95 mmHg",
                              "treatment": "Amlodipin 5 mg"})  # fmt: skip
    assert doc.status == DocumentStatus.COMPLETED
    _sign(dr, doc)
    assert doc.status == DocumentStatus.SIGNED
    ro = client_for(records_officer)
    ro.post(reverse("records:seal", args=[doc.pk]))
    ro.post(reverse("records:close", args=[doc.record.pk]))
    doc.record.refresh_from_db()
    assert doc.record.status == "closed"


def test_it_signs_once_when_the_button_is_pressed_twice(
    discharged, credentials, client_for, doctor
):
    """A double click sends the form twice: one signature, and a clear message."""
    dr = client_for(doctor)
    doc = _complete(dr, _new_document(dr, discharged))
    _sign(dr, doc)
    messages = _sign(dr, doc)
    assert doc.current_version().signatures.count() == 1
    assert messages and "Signed." not in messages
