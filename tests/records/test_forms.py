"""Every form type completes and renders; the payment statement is fed by the price list."""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from benhan.audit.chain import Actor
from benhan.encounters.actions import do_discharge, do_set_diagnoses
from benhan.records import actions, billing, formtypes
from benhan.records.models import DocumentStatus
from benhan.records.storage import default_store

VALUES = {
    "text": "Nội dung có dấu: Đặng Thị Ánh",
    "textarea": "Dòng một\nDòng hai",
    "lines": "Cam kết một\nCam kết hai",
    "number": 3,
}
TABLES = {
    "entries": "25/11/2026 08:00 | Sốt giảm, ho ít | Ceftriaxone 1 g × 2 lọ tiêm TM",
    "drugs": "Amoxicillin | 500 mg | 20 | viên | Uống 2 viên/ngày",
    "lines": "Thuốc | Paracetamol 500 mg | viên | 10 | 450 | 450",
}


def pdf_text(pdf: bytes) -> str:
    tool = shutil.which("pdftotext")
    if tool is None:
        pytest.skip("pdftotext not installed: apt-get install poppler-utils")
    return subprocess.run(  # noqa: S603 - a fixed tool on our own bytes
        [tool, "-", "-"], input=pdf, capture_output=True, check=True
    ).stdout.decode()


@pytest.fixture(autouse=True)
def _documents_dir(settings, tmp_path):
    settings.DOCUMENTS_DIR = tmp_path / "documents"


@pytest.fixture
def finished(encounter, doctor, icd10):
    encounter.attending = doctor
    encounter.save(update_fields=["attending"])
    do_set_diagnoses(Actor(doctor), encounter, main=icd10("J18.9"), secondary=[])
    do_discharge(Actor(doctor), encounter, ended_at=timezone.now() - timedelta(minutes=1),
                 outcome="5", discharge_type="1")  # fmt: skip
    encounter.refresh_from_db()
    return encounter


@pytest.mark.parametrize("code", sorted(formtypes.REGISTRY))
def test_it_completes_and_renders_every_form_type(code, finished, doctor):
    form = formtypes.get(code)
    if "inpatient" not in form.kinds:
        pytest.skip("not used for admissions")
    if not form.manual:
        pytest.skip("written by the laboratory from results: tests/lab")
    actor = Actor(doctor)
    rec = actions.do_open_record(actor, finished)
    doc = actions.do_create_document(actor, rec, code)
    data = {f.name: TABLES.get(f.name) if f.kind == "table" else VALUES.get(f.kind, "x")
            for f in form.fields}  # fmt: skip
    data = {k: v for k, v in data.items() if not doc.draft.get(k)}
    actions.do_save_draft(actor, doc, data)
    doc.refresh_from_db()
    version = actions.do_complete(actor, doc)
    pdf = default_store().get(version.rendered_sha256)
    text = pdf_text(pdf)
    assert form.title.split(",")[0] in text.replace("\n", " ")
    assert doc.lookup_code in text
    for slot in form.signers:
        assert slot.slot in version.boxes  # each staff signature has its box


def test_it_prefills_the_statement_from_the_price_list(finished, doctor, patient):
    """Bed-days per stay and prescribed drugs, at the card's benefit level."""
    actor = Actor(doctor)
    rec = actions.do_open_record(actor, finished)
    presc = actions.do_create_document(actor, rec, "prescription")
    actions.do_save_draft(actor, presc, {"drugs": "Amoxicillin 500 mg | | 20 | viên | 2 lần/ngày"})
    doc = actions.do_create_document(actor, rec, "payment_statement")
    rows = billing.parse_table(doc.draft["lines"], formtypes.get("payment_statement").field(
        "lines").columns, ("quantity", "price", "insurance_price"))  # fmt: skip
    names = [r["name"] for r in rows]
    assert names[0].startswith("Ngày giường bệnh Nội khoa")
    assert "Amoxicillin 500 mg" in names
    amox = rows[names.index("Amoxicillin 500 mg")]
    assert (amox["quantity"], amox["price"]) == (20.0, 1200.0)
    expected = billing.coverage_percent(finished)
    assert doc.draft["coverage_percent"] == expected


def test_it_keeps_records_of_deaths_for_thirty_years(finished, doctor, records_officer):
    """Retention follows the outcome: a death is kept 30 years from the year it ended."""
    from benhan.records.models import Document

    actor = Actor(doctor)
    rec = actions.do_open_record(actor, finished)
    doc = actions.do_create_document(actor, rec, "discharge_paper")
    # Sealing needs the signing path; here only the retention rule is under test.
    Document.objects.filter(pk=doc.pk).update(status=DocumentStatus.SEALED)
    rec = actions.do_close_record(Actor(records_officer), rec)
    assert rec.retention_class == "death"
    assert rec.retain_until.year == timezone.localtime(finished.ended_at).year + 30


def test_it_prints_a_paper_copy_with_who_and_when(finished, doctor, client_for):
    actor = Actor(doctor)
    rec = actions.do_open_record(actor, finished)
    doc = actions.do_create_document(actor, rec, "discharge_paper")
    actions.do_save_draft(actor, doc, {"treatment": "Kháng sinh"})
    doc.refresh_from_db()
    actions.do_complete(actor, doc)
    r = client_for(doctor).get(reverse("records:print", args=[doc.pk, 1]))
    assert r.status_code == 200 and r["Content-Type"] == "application/pdf"
    text = pdf_text(r.content)
    assert doctor.full_name in text
    # The stored original is unchanged.
    assert default_store().get(doc.current_version().current_sha256) != r.content
