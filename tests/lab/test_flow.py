"""Order → collect → results (as the codecs hand them over) → review → sign → the ward,
through the actions; the protocols and HTTP are tested on their own."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from benhan.audit.chain import Actor, verify
from benhan.lab import actions
from benhan.lab.accession import is_valid, luhn_digit
from benhan.lab.ingest import Ingestor
from benhan.lab.messages import Message, Observation, Query
from benhan.lab.models import (
    AnalyzerMessage,
    OrderStatus,
    Result,
    ResultNotice,
    ResultState,
    SpecimenStatus,
)
from benhan.records.models import DocumentStatus
from benhan.records.storage import default_store
from benhan.signing.verify import verify_pdf

from .conftest import PIN


def chem(sid: str, values: dict[str, str], **kw) -> Message:
    return Message(protocol="hl7", message_type="ORU^R01", control_id=kw.pop("ctl", "1"),
                   observations=[Observation(specimen_id=sid, test_code=c.lower(), value=v, **kw)
                                 for c, v in values.items()])  # fmt: skip


def test_accession_numbers_carry_a_check_digit(specimens):
    accessions = [s.accession for s in specimens.values()]
    assert len(set(accessions)) == 2 and all(is_valid(a) for a in accessions)
    assert luhn_digit("7992739871") == "3"  # the textbook Luhn example
    bad = accessions[0][:-1] + str((int(accessions[0][-1]) + 1) % 10)
    assert not is_valid(bad)


def test_order_expands_panels_and_groups_tubes(order, specimens):
    codes = sorted(i.test.code for i in order.items.all())
    assert "ELEC" not in codes and {"NA", "K", "CL", "GLU", "WBC", "PLT"} <= set(codes)
    serum, blood = specimens["serum"], specimens["whole_blood"]
    assert sorted(i.test.code for i in serum.items.all()) == ["CL", "GLU", "K", "NA"]
    assert blood.items.count() == 10
    order.refresh_from_db()
    assert order.status == OrderStatus.COLLECTED


def test_results_are_stored_matched_and_interpreted(hl7_analyzer, specimens):
    serum = specimens["serum"]
    ing = Ingestor(hl7_analyzer)
    stored = ing.store(b"raw-1", chem(serum.accession, {"GLU": "12.4", "NA": "139", "K": "<2.0"}))
    assert (stored.results, stored.unmatched, stored.duplicate) == (3, 0, False)
    by = {r.test.code: r for r in serum.results.all()}
    assert by["GLU"].value_num == Decimal("12.4") and by["GLU"].interpretation == "H"
    assert by["K"].comparator == "<" and by["K"].interpretation == "L" and by["K"].critical
    assert by["NA"].interpretation == "" and by["NA"].reference_range == "135 - 145"
    serum.refresh_from_db()
    assert serum.status == SpecimenStatus.PARTIAL
    # The same bytes again: stored once.
    again = ing.store(b"raw-1", chem(serum.accession, {"GLU": "12.4"}))
    assert again.duplicate and AnalyzerMessage.objects.count() == 1
    # A rerun supersedes; the old value stays.
    ing.store(b"raw-2", chem(serum.accession, {"GLU": "11.9", "CL": "101"}))
    glu = serum.results.filter(test__code="GLU").order_by("id")
    assert [r.state for r in glu] == [ResultState.SUPERSEDED, ResultState.CURRENT]
    serum.refresh_from_db()
    assert serum.status == SpecimenStatus.COMPLETE


def test_unknown_specimens_codes_and_qc_are_kept_apart(hl7_analyzer, specimens):
    ing = Ingestor(hl7_analyzer)
    ing.store(b"a", chem("99999999999", {"GLU": "5.0"}))
    ing.store(b"b", chem(specimens["serum"].accession, {"XYZ": "1"}))
    ing.store(b"c", chem("QC-LOT-7", {"GLU": "5.6"}, qc=True))
    states = sorted(Result.objects.values_list("state", "reason"))
    assert states == [("qc", ""), ("unmatched", "unknown specimen"),
                      ("unmatched", "unknown test code")]  # fmt: skip


def test_host_query_answers_the_pending_tests(hl7_analyzer, specimens):
    serum = specimens["serum"]
    ing = Ingestor(hl7_analyzer)
    ing.store(b"x", chem(serum.accession, {"GLU": "5.5"}))
    [found, missing] = ing.orders_for(Query(specimen_ids=[serum.accession, "00000000000"]))
    assert found.found and sorted(t.code for t in found.tests) == ["cl", "k", "na"]
    assert found.patient_name == serum.order.encounter.patient.full_name
    assert not missing.found


def test_review_sign_and_route(hl7_analyzer, specimens, lab_tech, lab_pki, doctor, nurse):
    serum = specimens["serum"]
    ing = Ingestor(hl7_analyzer)
    ing.store(b"m", chem(serum.accession, {"GLU": "7.1", "NA": "140", "K": "6.9", "CL": "100"}))
    tech = Actor(lab_tech)
    with pytest.raises(ValidationError):
        actions.do_manual_result(tech, serum, serum.items.get(test__code="GLU").test, "6.8")
    actions.do_manual_result(tech, serum, serum.items.get(test__code="GLU").test, "6.8",
                             reason="Chạy lại, mẫu vỡ hồng cầu")  # fmt: skip
    serum.refresh_from_db()
    actions.do_sign_report(tech, serum, PIN)
    serum.refresh_from_db()
    assert serum.status == SpecimenStatus.SIGNED and serum.released_at
    doc = serum.report
    assert doc.status == DocumentStatus.SEALED and doc.record.encounter == serum.order.encounter
    rows = doc.current_version().data["results"].splitlines()
    assert any(r.startswith("GLU | Glucose máu | 6.8") for r in rows)
    assert verify_pdf(default_store().get(doc.current_version().current_sha256)).ok
    notices = ResultNotice.objects.order_by("id")
    assert [(n.department_id, n.user_id, n.critical) for n in notices] == [
        (serum.order.department_id, None, True),
        (serum.order.department_id, doctor.pk, True),
    ]
    # Results arriving after signing go to the unmatched queue, not into the report.
    ing.store(b"late", chem(serum.accession, {"GLU": "9.9"}))
    assert Result.objects.get(value="9.9").state == ResultState.UNMATCHED
    assert verify()[1] == []


def test_a_correction_after_a_wrong_pin_rewrites_the_report(hl7_analyzer, specimens, lab_tech,
                                                            lab_pki, doctor):  # fmt: skip
    from benhan.signing.pki import WrongPin

    serum = specimens["serum"]
    values = {"GLU": "12.4", "NA": "140", "K": "4.0", "CL": "100"}
    Ingestor(hl7_analyzer).store(b"r", chem(serum.accession, values))
    tech = Actor(lab_tech)
    with pytest.raises(ValidationError):  # a doctor does not write the lab's report
        actions.do_sign_report(Actor(doctor), serum, PIN)
    serum.refresh_from_db()
    assert serum.report is None
    with pytest.raises(WrongPin):
        actions.do_sign_report(tech, serum, "999999")
    serum.refresh_from_db()
    glu = serum.items.get(test__code="GLU").test
    actions.do_manual_result(tech, serum, glu, "6.8", reason="Nhập nhầm kết quả")
    # A late analyzer result does not slip into the written report: it waits to be linked.
    Ingestor(hl7_analyzer).store(b"late", chem(serum.accession, {"NA": "150"}))
    assert Result.objects.get(value="150").reason == "report already written"
    actions.do_sign_report(tech, serum, PIN)
    serum.refresh_from_db()
    version = serum.report.current_version()
    assert serum.status == SpecimenStatus.SIGNED and version.version == 2
    assert "GLU | Glucose máu | 6.8" in version.data["results"]
    assert "12.4" not in version.data["results"]


def test_simulated_reference_ranges_read_as_a_lab_writes_them(hl7_analyzer, specimens):
    import random

    from benhan.lab.simulate import pending, results_for

    [(specimen, tests)] = pending(hl7_analyzer, specimens["serum"].accession)
    rows = results_for(specimen, tests, random.Random(1))
    ranges = {code: rng for code, _, _, _, rng, _ in rows}
    assert ranges["na"] == "135-145" and "E" not in "".join(ranges.values())
