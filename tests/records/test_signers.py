"""A staff member configured for a remote signing service signs a record through HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from django.urls import reverse
from django.utils import timezone
from signing.csc_standin import CREDENTIAL_ID, CscStandin  # tests/signing

from benhan.audit.chain import Actor
from benhan.encounters.actions import do_discharge, do_set_diagnoses
from benhan.records.models import Document, DocumentStatus
from benhan.records.storage import default_store
from benhan.signing import pki
from benhan.signing.models import SignerProfile
from benhan.signing.verify import verify_pdf


@pytest.fixture
def service():
    with CscStandin(signer_name="Lê Văn Bác") as running:
        yield running


@pytest.fixture
def remote_doctor(doctor, service, settings, tmp_path, facility):
    settings.SIGNING_PIN_KDF_COST = 10
    settings.TSA_URL = ""
    settings.DOCUMENTS_DIR = tmp_path / "documents"
    settings.CSC_URL = service.url
    roots = tmp_path / "roots.pem"
    roots.write_bytes(service.root_cert.public_bytes(Encoding.PEM))
    settings.TRUSTED_ROOTS_FILE = str(roots)
    pki.ensure_facility_pki(facility)
    SignerProfile.objects.create(user=doctor, method="remote", csc_credential_id=CREDENTIAL_ID)
    return doctor


@pytest.fixture
def completed(encounter, remote_doctor, icd10, client_for):
    encounter.attending = remote_doctor
    encounter.save(update_fields=["attending"])
    do_set_diagnoses(Actor(remote_doctor), encounter, main=icd10("J18.9"), secondary=[])
    do_discharge(Actor(remote_doctor), encounter, ended_at=timezone.now() - timedelta(minutes=1),
                 outcome="1", discharge_type="1")  # fmt: skip
    client = client_for(remote_doctor)
    client.post(reverse("records:encounter", args=[encounter.pk]), {"form_type": "prescription"})
    doc = Document.objects.get()
    drugs = "Amoxicillin | 500 mg | 20 | viên | 2 lần/ngày"
    client.post(reverse("records:save_draft", args=[doc.pk]), {"drugs": drugs, "complete": "1"})
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.COMPLETED
    return doc


def test_it_asks_for_the_one_time_code(completed, client_for, remote_doctor):
    r = client_for(remote_doctor).get(reverse("records:document", args=[completed.pk]))
    assert r.context["sign_form"]["pin"].label != "Signing PIN"


def test_it_signs_through_the_remote_service(completed, client_for, remote_doctor, service):
    r = client_for(remote_doctor).post(
        reverse("records:sign", args=[completed.pk]), {"pin": "123456"}, follow=True
    )
    completed.refresh_from_db()
    assert completed.status == DocumentStatus.SIGNED, [str(m) for m in r.context["messages"]]
    assert len(service.signed) == 1
    report = verify_pdf(default_store().get(completed.current_version().current_sha256))
    signature = report.signatures[0]
    assert signature.intact
    assert "Lê Văn Bác" in signature.signer_name
    # The stand-in's CA publishes no revocation information, and verification requires
    # it (archive-style, nothing fetched): such a signature is intact but not trusted.
    # A real service's CA publishes CRLs or OCSP; see docs/signers.md.
    assert any("revocation" in p.lower() or "trusted" in p.lower() for p in signature.problems)


def test_it_signs_nothing_with_a_wrong_code(completed, client_for, remote_doctor, service):
    r = client_for(remote_doctor).post(
        reverse("records:sign", args=[completed.pk]), {"pin": "000000"}, follow=True
    )
    completed.refresh_from_db()
    assert completed.status == DocumentStatus.COMPLETED
    assert service.signed == []
    assert [str(m) for m in r.context["messages"]]
