"""Signing with the patient on a tablet, through HTTP: the drawing into the page before
staff sign (evidence embedded, covered by their signatures and the seal), or as the
witness's signature after; refusals; the checks on identity and on what was shown."""

from __future__ import annotations

import json
import math

import pytest
from django.test import Client
from django.urls import reverse

from benhan.audit.chain import verify
from benhan.audit.models import AuditEvent
from benhan.records.models import Document, DocumentStatus, PatientSignature
from benhan.records.patient_sign import embedded_evidence
from benhan.records.storage import default_store
from benhan.signing import pki
from benhan.signing.verify import verify_pdf

PIN = "246810"
CONSENT = {"procedure": "Nội soi dạ dày", "risks": "Chảy máu, thủng (hiếm gặp)"}


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


def strokes(n: int = 60) -> str:
    """A wavy line across the pad, as signature_pad sends it."""
    points = [{"x": 30 + i * 8, "y": 100 + 40 * math.sin(i / 4), "time": 1_764_000_000_000 + i * 16,
               "pressure": 0.5} for i in range(n)]  # fmt: skip
    return json.dumps([{"penColor": "#000", "points": points}])


CANVAS = json.dumps({"w": 700, "h": 233, "ratio": 1})


@pytest.fixture
def consent(encounter, credentials, client_for, doctor) -> Document:
    dr = client_for(doctor)
    r = dr.post(
        reverse("records:encounter", args=[encounter.pk]), {"form_type": "surgical_consent"}
    )
    assert r.status_code == 302
    doc = Document.objects.latest("pk")
    r = dr.post(reverse("records:save_draft", args=[doc.pk]), {**CONSENT, "complete": "1"})
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.COMPLETED
    return doc


def sign_form(doc: Document, **extra) -> dict:
    return {
        "outcome": "signed", "signer": "patient", "identity": "known",
        "shown": doc.current_version().current_sha256, "strokes": strokes(), "canvas": CANVAS,
        "client_time": "2026-11-27T11:00:00.000Z", "tz_offset": "-420", "pointer": "touch",
        "screen": "800x1280@2", **extra,
    }  # fmt: skip


def test_patient_signs_before_staff_then_staff_sign_and_seal(
    consent, client_for, nurse, doctor, records_officer
):
    nu = client_for(nurse)
    page = nu.get(reverse("records:patient_sign", args=[consent.pk]))
    assert page.status_code == 200
    assert b'id="pad"' in page.content
    image = nu.get(reverse("records:page_image", args=[consent.pk, 1, 1]))
    assert image.status_code == 200 and image["Content-Type"] == "image/webp"

    r = nu.post(reverse("records:patient_sign", args=[consent.pk]), sign_form(consent),
                HTTP_USER_AGENT="Mozilla/5.0 (Linux; Android 9; SM-T295)")  # fmt: skip
    assert r.status_code == 302, r.content[:2000]
    ps = PatientSignature.objects.get()
    assert ps.placement == "page" and ps.witness == nurse and ps.outcome == "signed"
    version = consent.current_version()
    pdf = default_store().get(version.current_sha256)
    evidence = json.loads(embedded_evidence(pdf))
    assert evidence == ps.evidence
    assert evidence["device"]["user_agent"].startswith("Mozilla/5.0 (Linux; Android 9")
    assert evidence["device"]["pointer"] == "touch"
    assert evidence["witness"]["username"] == nurse.username
    assert evidence["document"]["shown_sha256"] == version.rendered_sha256
    assert "Nội soi dạ dày" in "".join(evidence["text_shown"])
    assert len(evidence["strokes"][0]) == 60

    # Staff sign and the records office seals: every signature covers the drawing.
    dr = client_for(doctor)
    dr.post(reverse("records:sign", args=[consent.pk]), {"pin": PIN})
    client_for(records_officer).post(reverse("records:seal", args=[consent.pk]))
    consent.refresh_from_db()
    assert consent.status == DocumentStatus.SEALED
    report = verify_pdf(default_store().get(consent.current_version().current_sha256))
    assert report.ok, report
    assert json.loads(embedded_evidence(default_store().get(
        consent.current_version().current_sha256))) == ps.evidence  # fmt: skip
    assert AuditEvent.objects.filter(action="document.patient_signed").count() == 1
    assert verify()[1] == []

    done = nu.get(reverse("records:patient_signed", args=[consent.pk]))
    assert done.status_code == 200
    copy = Client().get(done.context["copy_url"].split("8000", 1)[-1])  # no account needed
    assert copy.status_code == 200 and copy["Content-Type"] == "application/pdf"


def test_seal_waits_for_the_patient(consent, client_for, doctor, records_officer):
    client_for(doctor).post(reverse("records:sign", args=[consent.pk]), {"pin": PIN})
    r = client_for(records_officer).post(reverse("records:seal", args=[consent.pk]), follow=True)
    consent.refresh_from_db()
    assert consent.status == DocumentStatus.SIGNED
    assert any("patient" in str(m).lower() or "người bệnh" in str(m).lower()
               for m in r.context["messages"])  # fmt: skip


def test_after_staff_signed_it_is_the_witness_signature(
    consent, client_for, doctor, nurse, records_officer
):
    client_for(doctor).post(reverse("records:sign", args=[consent.pk]), {"pin": PIN})
    nu = client_for(nurse)
    r = nu.post(reverse("records:patient_sign", args=[consent.pk]), sign_form(consent))
    assert r.status_code == 422
    assert "PIN" in r.content.decode()
    r = nu.post(reverse("records:patient_sign", args=[consent.pk]), sign_form(consent, pin=PIN))
    assert r.status_code == 302, r.content[:3000]
    ps = PatientSignature.objects.get()
    assert ps.placement == "field"
    client_for(records_officer).post(reverse("records:seal", args=[consent.pk]))
    pdf = default_store().get(consent.current_version().current_sha256)
    report = verify_pdf(pdf)
    assert report.ok, report
    assert [s.field_name for s in report.signatures][:2] == ["doctor", "patient"]
    assert all(s.bottom_line for s in report.signatures)


def test_refusal_is_recorded_and_lets_the_seal_through(consent, client_for, nurse, doctor):
    nu = client_for(nurse)
    form = {"outcome": "refused", "signer": "patient", "identity": "known",
            "shown": consent.current_version().current_sha256,
            "refusal_reason": "Muốn hỏi ý kiến con trai trước"}  # fmt: skip
    r = nu.post(reverse("records:patient_sign", args=[consent.pk]), form)
    assert r.status_code == 302, r.content[:2000]
    ps = PatientSignature.objects.get()
    assert ps.outcome == "refused" and ps.evidence["strokes"] == []
    assert AuditEvent.objects.get(action="document.patient_refused").reason.startswith("Muốn")


def test_changed_document_and_wrong_cccd_are_refused(consent, client_for, nurse, patient):
    nu = client_for(nurse)
    url = reverse("records:patient_sign", args=[consent.pk])
    r = nu.post(url, sign_form(consent, shown="0" * 64))
    assert r.status_code == 422 and not PatientSignature.objects.exists()
    patient.cccd = "079123456789"
    patient.save()
    r = nu.post(url, sign_form(consent, identity="cccd", identity_detail="079123456780"))
    assert r.status_code == 422 and not PatientSignature.objects.exists()
    r = nu.post(url, sign_form(consent, strokes=json.dumps([{"points": [{"x": 1, "y": 1}]}])))
    assert r.status_code == 422 and not PatientSignature.objects.exists()
    r = nu.post(url, sign_form(consent, strokes=""))  # no script: nothing drawn
    assert r.status_code == 422 and "Người bệnh chưa ký vào ô ký." in r.content.decode()
    r = nu.post(url, sign_form(consent, identity="cccd", identity_detail="079123456789"))
    assert r.status_code == 302
