"""Lab fixtures, for the lab's tests and the browser's (a plugin of tests/conftest.py):
the catalogue, an HL7 and an ASTM analyzer with their codes, an order of a few tests
collected into specimens, signing keys for the lab technician."""

from __future__ import annotations

import pytest

from benhan.audit.chain import Actor
from benhan.lab import actions
from benhan.lab.catalogue import load_catalogue
from benhan.lab.models import Analyzer, AnalyzerCode, LabTest

PIN = "246810"


@pytest.fixture
def catalogue(facility):
    load_catalogue(facility)
    return {t.code: t for t in LabTest.objects.filter(facility=facility)}


@pytest.fixture
def hl7_analyzer(facility, catalogue):
    a = Analyzer.objects.create(facility=facility, name="BS-240 (HL7)", protocol="hl7", port=0,
                                dialect={"ack_style": "mindray"})  # fmt: skip
    for code in ("GLU", "URE", "CRE", "AST", "ALT", "NA", "K", "CL"):
        AnalyzerCode.objects.create(analyzer=a, code=code.lower(), test=catalogue[code])
    return a


@pytest.fixture
def astm_analyzer(facility, catalogue):
    a = Analyzer.objects.create(facility=facility, name="XN-350 (ASTM)", protocol="astm", port=0)
    for code in ("WBC", "RBC", "HGB", "HCT", "MCV", "MCH", "MCHC", "PLT", "NEUP", "LYMP"):
        AnalyzerCode.objects.create(
            analyzer=a,
            code=code.replace("P", "%") if code in ("NEUP", "LYMP") else code,
            test=catalogue[code],
        )
    return a


@pytest.fixture
def lab_pki(facility, lab_tech):
    from benhan.signing import pki

    pki.ensure_facility_pki(facility)
    pki.issue_staff_credential(lab_tech, PIN)


@pytest.fixture
def order(encounter, doctor, catalogue):
    tests = [catalogue["GLU"], catalogue["ELEC"], catalogue["CBC"]]
    return actions.do_order(Actor(doctor), encounter, tests, note="Theo dõi đái tháo đường")


@pytest.fixture
def specimens(order, lab_tech):
    """{specimen type: Specimen} after collection."""
    return {s.specimen_type: s for s in actions.do_collect(Actor(lab_tech), order)}
