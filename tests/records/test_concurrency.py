"""Two signatures at once (PostgreSQL): the row lock lets one through; the document stays
consistent. SQLite serialises writers on one lock (and its in-memory test database is
not shared between threads), so there is no race to test there."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from benhan.audit.chain import Actor, verify
from benhan.encounters.actions import do_discharge, do_set_diagnoses
from benhan.records import actions
from benhan.records.models import Signature
from benhan.records.storage import default_store
from benhan.signing import pki
from benhan.signing.verify import verify_pdf

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="concurrency needs PostgreSQL: run with BENHAN_DB=postgres",
    ),
    pytest.mark.django_db(transaction=True),
]
PIN = "246810"


def test_it_signs_once_when_two_requests_race(encounter, doctor, icd10, settings, tmp_path):
    settings.SIGNING_PIN_KDF_COST = 10
    settings.TSA_URL = ""
    settings.DOCUMENTS_DIR = tmp_path / "documents"
    pki.ensure_facility_pki(encounter.facility)
    pki.issue_staff_credential(doctor, PIN)
    encounter.attending = doctor
    encounter.save(update_fields=["attending"])
    actor = Actor(doctor)
    do_set_diagnoses(actor, encounter, main=icd10("J18.9"), secondary=[])
    do_discharge(actor, encounter, ended_at=timezone.now() - timedelta(minutes=1),
                 outcome="1", discharge_type="1")  # fmt: skip
    encounter.refresh_from_db()
    rec = actions.do_open_record(actor, encounter)
    doc = actions.do_create_document(actor, rec, "discharge_paper")
    actions.do_save_draft(actor, doc, {"treatment": "Kháng sinh"})
    doc.refresh_from_db()
    actions.do_complete(actor, doc)

    barrier = threading.Barrier(2)
    results: list = [None, None]

    def sign(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = actions.do_sign(actor, doc, PIN)
        except Exception as e:  # the test inspects what each request got
            results[i] = e
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sign, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(isinstance(r, Signature) for r in results) == 1, results
    version = doc.current_version()
    assert version.signatures.count() == 1
    assert verify_pdf(default_store().get(version.current_sha256)).signatures[0].intact
    assert verify()[1] == []
