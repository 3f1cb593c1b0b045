"""`benhan lab inbox|results|catalogue` and `benhan analyzers list` from the command line."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from benhan.audit.models import AuditEvent
from benhan.lab.ingest import Ingestor
from benhan.lab.models import LabTest

from .test_flow import chem


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_inbox_json_lists_every_received_result(hl7_analyzer, specimens):
    serum = specimens["serum"]
    ing = Ingestor(hl7_analyzer)
    ing.store(b"1", chem(serum.accession, {"GLU": "<2.0", "NA": "139"}, ctl="M1", flags="L",
                         reference_range="3.9-6.4", unit="mmol/L"))  # fmt: skip
    ing.store(b"2", chem("12345678903", {"K": "4.1"}, ctl="M2"))
    rows = json.loads(run("lab", "inbox", "--json"))
    assert len(rows) == 3
    keys = {"analyzer", "message_id", "received_at", "specimen_id", "test_code", "test", "value",
            "unit", "reference_range", "flags", "status", "accession"}  # fmt: skip
    assert keys <= set(rows[0])
    glu = next(r for r in rows if r["test_code"] == "glu")
    assert (glu["analyzer"], glu["message_id"], glu["specimen_id"]) == (
        hl7_analyzer.name,
        "M1",
        serum.accession,
    )
    assert (glu["test"], glu["value"], glu["comparator"], glu["unit"]) == (
        "GLU",
        "<2.0",
        "<",
        "mmol/L",
    )
    assert (glu["flags"], glu["status"], glu["accession"]) == ("L", "current", serum.accession)
    unmatched = next(r for r in rows if r["test_code"] == "k")
    assert unmatched["accession"] is None and unmatched["status"] == "unmatched"
    assert [r["test_code"] for r in json.loads(run("lab", "inbox", "--json", "--unmatched"))] == [
        "k"
    ]
    assert "UNMATCHED" in run("lab", "inbox")
    assert AuditEvent.objects.filter(action="lab.cli_inbox").count() == 3


def test_results_of_one_specimen(hl7_analyzer, specimens):
    serum = specimens["serum"]
    ing = Ingestor(hl7_analyzer)
    ing.store(b"1", chem(serum.accession, {"GLU": "7.0"}))
    ing.store(b"2", chem(serum.accession, {"GLU": "7.2"}))  # a rerun
    out = json.loads(run("lab", "results", serum.accession, "--json"))
    assert out["accession"] == serum.accession and [r["value"] for r in out["results"]] == ["7.2"]
    every = json.loads(run("lab", "results", serum.accession, "--json", "--all"))
    assert sorted(r["status"] for r in every["results"]) == ["current", "superseded"]
    assert AuditEvent.objects.filter(action="lab.cli_results",
                                     patient=serum.order.encounter.patient).exists()  # fmt: skip
    with pytest.raises(CommandError):
        run("lab", "results", "00000000000")


def test_catalogue_load_and_analyzers_list(facility, hl7_analyzer):
    assert "tests and panels" in run("lab", "catalogue", "load")
    assert LabTest.objects.filter(facility=facility, code="CBC", is_panel=True).exists()
    assert hl7_analyzer.name in run("analyzers", "list")
