"""The demo clinic's laboratory: the catalogue, two analyzers on 127.0.0.1:2575 (HL7)
and 127.0.0.1:2576 (ASTM), and orders in every state — to collect, waiting for the
analyzers (`benhan analyzers simulate` sends their results), to review and sign, signed
and in the wards' inboxes, one result in the unmatched queue, an ultrasound to report.

Everything goes through the real actions; results arriving "from the analyzers" are
real HL7 and ASTM messages built by the codecs and stored by the same ingestion the
listeners use.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from django.conf import settings

from benhan.audit.chain import Actor
from benhan.encounters.models import Encounter, EncounterStatus
from benhan.lab import actions, astm, hl7v2
from benhan.lab.catalogue import load_catalogue
from benhan.lab.ingest import Ingestor
from benhan.lab.models import Analyzer, AnalyzerCode, LabTest

Progress = Callable[[str, int, int], None]

HL7_PORT = 2575
ASTM_PORT = 2576
# The analyzers' own codes (what their menus call the tests) → the catalogue's.
HL7_CODES = {"GLU": "GLU", "UREA": "URE", "CREA": "CRE", "AST": "AST", "ALT": "ALT",
             "CHOL": "CHOL", "TG": "TG", "HDL-C": "HDL", "LDL-C": "LDL", "Na": "NA",
             "K": "K", "Cl": "CL", "Ca": "CA", "HbA1c": "HBA1C"}  # fmt: skip
ASTM_CODES = {"WBC": "WBC", "RBC": "RBC", "HGB": "HGB", "HCT": "HCT", "MCV": "MCV",
              "MCH": "MCH", "MCHC": "MCHC", "PLT": "PLT", "NEUT%": "NEUP",
              "LYMPH%": "LYMP"}  # fmt: skip

# (panels/tests ordered, how far they go)
PLANS = [
    (["GLU", "ELEC"], "ordered"), (["CBC"], "ordered"), (["URINE"], "ordered"),
    (["CBC"], "collected"), (["GLU", "URE", "CRE"], "collected"),
    (["LIPID", "GLU"], "collected"), (["CBC", "AST", "ALT"], "collected"),
    (["ELEC", "CRE"], "resulted"), (["CBC"], "resulted"),
    (["GLU", "HBA1C"], "signed"), (["CBC", "ELEC"], "signed"),
    (["SA-BUNG"], "collected"),
]  # fmt: skip


def analyzers(facility) -> tuple[Analyzer, Analyzer]:
    tests = {t.code: t for t in LabTest.objects.filter(facility=facility)}
    host = getattr(settings, "LAB_DEMO_HOST", "127.0.0.1")
    hl7_analyzer, _ = Analyzer.objects.get_or_create(
        facility=facility, name="Máy sinh hóa BS-240 (HL7)",
        defaults={"protocol": "hl7", "host": host, "port": HL7_PORT,
                  "dialect": {"ack_style": "mindray"}},
    )  # fmt: skip
    astm_analyzer, _ = Analyzer.objects.get_or_create(
        facility=facility, name="Máy huyết học XN-350 (ASTM)",
        defaults={"protocol": "astm", "host": host, "port": ASTM_PORT},
    )  # fmt: skip
    for analyzer, codes in ((hl7_analyzer, HL7_CODES), (astm_analyzer, ASTM_CODES)):
        for code, test in codes.items():
            AnalyzerCode.objects.get_or_create(analyzer=analyzer, code=code,
                                               defaults={"test": tests[test]})  # fmt: skip
    return hl7_analyzer, astm_analyzer


def seed_lab(facility, staff: dict, rng: random.Random, progress: Progress, pin: str) -> dict:
    from benhan.lab.simulate import pending, results_for

    load_catalogue(facility)
    hl7_analyzer, astm_analyzer = analyzers(facility)
    tests = {t.code: t for t in LabTest.objects.filter(facility=facility)}
    tech = Actor(staff["ktv.xn"])
    open_encounters = list(
        Encounter.objects.filter(
            facility=facility,
            status=EncounterStatus.OPEN,
            kind__in=["inpatient", "emergency"],
            attending__isnull=False,
        )
        .select_related("attending", "patient")
        .order_by("started_at")
    )
    rng.shuffle(open_encounters)
    counts: dict[str, int] = {}
    for n, ((codes, state), encounter) in enumerate(zip(PLANS, open_encounters, strict=False), 1):
        order = actions.do_order(Actor(encounter.attending), encounter,
                                 [tests[c] for c in codes])  # fmt: skip
        counts[state] = counts.get(state, 0) + 1
        progress("laboratory", n, len(PLANS))
        if state == "ordered":
            continue
        specimens = actions.do_collect(tech, order)
        if state == "collected":
            continue
        for specimen in specimens:
            for analyzer in (hl7_analyzer, astm_analyzer):
                for s, pending_tests in pending(analyzer, specimen.accession):
                    _arrive(analyzer, s, results_for(s, pending_tests, rng))
        if state == "signed":
            for specimen in specimens:
                specimen.refresh_from_db()
                actions.do_sign_report(tech, specimen, pin)
    # A result for a tube whose barcode label was misread: waits in the unmatched queue.
    _arrive(hl7_analyzer, None, [("GLU", "Glucose", "6.1", "mmol/L", "3.9-6.4", "N")],
            specimen_id="2611270009")  # fmt: skip
    return counts


def _arrive(analyzer: Analyzer, specimen, rows, specimen_id: str = "") -> None:
    """A result message as the analyzer would send it, stored by the listeners' path."""
    sid = specimen.accession if specimen else specimen_id
    name = specimen.order.encounter.patient.full_name if specimen else ""
    if analyzer.protocol == "hl7":
        raw = hl7v2.build_oru(sid, rows, style="mindray", patient_name=name)
        message = hl7v2.parse(raw, analyzer.dialect)
        ack = hl7v2.build_ack(message, "AA", "", analyzer.dialect)
    else:
        text = astm.build_result_message(sid, rows)
        raw = text.encode("utf-8") if isinstance(text, str) else text
        message = astm.parse(raw, analyzer.dialect)
        ack = b""
    Ingestor(analyzer).store(raw, message, ack=ack, peer="demo")
