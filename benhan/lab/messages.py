"""What an analyzer says, whatever its protocol: the neutral shapes the HL7 and ASTM
codecs produce and the ingestion (benhan.lab.ingest) consumes.

Protocol modules (benhan.lab.hl7v2, benhan.lab.astm) never touch the database: they
turn bytes into these dataclasses and answers into bytes. Values are kept exactly as
sent (strings); parsing numbers, matching specimens and mapping codes happen later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


class MessageError(Exception):
    """A message that cannot be read. `code` says how to answer it:

    "AE": application error — the message was understood as HL7/ASTM but is wrong
          (missing required segment, unknown message type, bad field);
    "AR": application reject — not acceptable at all (no MSH, wrong delimiters,
          wrong processing id or version, not HL7).
    """

    def __init__(self, reason: str, code: str = "AE"):
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass
class Observation:
    """One result as the analyzer sent it."""

    specimen_id: str  # as sent, trimmed; "" when the analyzer gave none
    test_code: str  # the analyzer's code (HL7 OBX-3.1; ASTM R.3, the test component)
    test_name: str = ""
    value: str = ""  # exactly as sent (e.g. "<0.5", "12.3", "Positive")
    unit: str = ""
    reference_range: str = ""  # as sent, e.g. "3.5-5.0", "<200"
    flags: str = ""  # abnormal flags as sent (H, L, HH, LL, N, A, …), repeats joined by "~"
    status: str = ""  # result status as sent (F, P, C, R, …)
    value_type: str = ""  # HL7 OBX-2 (NM, ST, CE, …); "" for ASTM
    observed_at: datetime | None = None
    qc: bool = False  # a quality-control run, not a patient result
    sequence: int = 0  # order within the message (OBX-1 or R.2)
    extra: dict = field(default_factory=dict)  # anything else worth keeping (instrument id…)


@dataclass
class Query:
    """A host query: the analyzer asks what to run on these specimens."""

    specimen_ids: list[str]
    query_id: str = ""  # QRD-4 / QPD-2 / Q.2, echoed in the answer
    extra: dict = field(default_factory=dict)


@dataclass
class Message:
    """One whole message (HL7) or transmission (ASTM, ENQ … EOT)."""

    protocol: str  # "hl7" or "astm"
    message_type: str  # "ORU^R01", "OUL^R22", "QRY^Q02", "QBP^Q11", "ACK", "ASTM"
    control_id: str = ""  # HL7 MSH-10; ASTM H.3 (message control id) if any
    version: str = ""  # HL7 MSH-12; ASTM H.13
    sending_application: str = ""
    sending_facility: str = ""
    charset: str = ""  # HL7 MSH-18 as sent
    sent_at: datetime | None = None  # MSH-7 / H.14
    observations: list[Observation] = field(default_factory=list)
    queries: list[Query] = field(default_factory=list)
    patient_ids: list[str] = field(default_factory=list)  # PID-2/PID-3 / P.3, P.4
    qc: bool = False  # the whole message is quality control
    extra: dict = field(default_factory=dict)


@dataclass
class PendingTest:
    """One test to run on a specimen, in the analyzer's own code (host query answers)."""

    code: str
    name: str = ""


@dataclass
class PendingOrder:
    """What the host answers for one specimen asked about in a query."""

    specimen_id: str
    tests: list[PendingTest]
    patient_id: str = ""
    patient_name: str = ""  # "FAMILY^GIVEN" is built by the codec from this
    birth_date: datetime | None = None
    sex: str = ""  # "M" / "F" / "U"
    priority: str = "R"  # "R" routine, "S" stat
    collected_at: datetime | None = None
    specimen_type: str = ""  # e.g. "serum", "whole blood", "urine"
    found: bool = True  # False: the specimen is unknown (answered "not found")
