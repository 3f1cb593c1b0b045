"""`benhan analyzers simulate`: play the analyzers for the demo and for testing.

For each specimen waiting for results, the simulator takes the part of the analyzer
that runs its tests: it may first ask the host what to run (a host query, as analyzers
do when they read a barcode), then sends realistic values — mostly normal, some out of
range, now and then a critical one — over the real protocol to the real listener:
HL7 ORU^R01 over MLLP with python-hl7's client, ASTM E1394 records over an E1381 link.
"""

from __future__ import annotations

import random
import socket
import time
from dataclasses import dataclass
from decimal import Decimal

from benhan.lab import astm, hl7v2
from benhan.lab.catalogue import range_for
from benhan.lab.models import Analyzer, AnalyzerCode, LabTest, ResultState, Specimen, SpecimenStatus

# Typical results for tests whose range is text ("Âm tính"): (normal, abnormal).
TEXT_VALUES = {"UGLU": ("Âm tính", "2+"), "UPRO": ("Âm tính", "1+"), "ULEU": ("Âm tính", "2+"),
               "UNIT": ("Âm tính", "Dương tính"), "UBLD": ("Âm tính", "1+"),
               "UKET": ("Âm tính", "1+")}  # fmt: skip


@dataclass
class Sent:
    analyzer: str
    accession: str
    tests: int
    reply: str  # what the listener answered (ACK code, or "link ok")


def realistic_value(test: LabTest, specimen: Specimen, rng: random.Random) -> tuple[str, str]:
    """(value, flag as an analyzer would send it)."""
    if test.code in TEXT_VALUES:
        normal, abnormal = TEXT_VALUES[test.code]
        return (abnormal, "A") if rng.random() < 0.15 else (normal, "N")
    patient = specimen.order.encounter.patient
    r = range_for(test, patient.sex, patient.birth_date, specimen.collected_at.date())
    lo = float(r.low) if r and r.low is not None else None
    hi = float(r.high) if r and r.high is not None else None
    if lo is None and hi is None:
        lo, hi = 1.0, 10.0
    elif lo is None:
        lo = hi * 0.3
    elif hi is None:
        hi = lo * 2.5
    roll = rng.random()
    if roll < 0.03 and (test.critical_high is not None or test.critical_low is not None):
        v = (
            float(test.critical_high) * 1.15
            if test.critical_high is not None
            else float(test.critical_low) * 0.8
        )
        flag = "HH" if test.critical_high is not None else "LL"
    elif roll < 0.18:
        v, flag = hi * rng.uniform(1.05, 1.6), "H"
    elif roll < 0.25 and lo > 0:
        v, flag = lo * rng.uniform(0.6, 0.95), "L"
    else:
        v, flag = rng.uniform(lo + (hi - lo) * 0.1, hi - (hi - lo) * 0.1), "N"
    if test.unit == "%":
        v = min(v, 96.0)  # a differential count cannot pass 100 %
    q = Decimal(10) ** -test.decimals
    return str(Decimal(str(v)).quantize(q)), flag


def pending(analyzer: Analyzer, accession: str | None = None) -> list[tuple[Specimen, list]]:
    """Specimens with ordered tests this analyzer runs and no current result yet."""
    codes = {c.test_id: c.code for c in AnalyzerCode.objects.filter(analyzer=analyzer)}
    qs = (Specimen.objects.filter(facility_id=analyzer.facility_id,
                                  status__in=[SpecimenStatus.COLLECTED, SpecimenStatus.PARTIAL])
          .select_related("order__encounter__patient").prefetch_related("items__test")
          .order_by("collected_at"))  # fmt: skip
    if accession:
        qs = qs.filter(accession=accession)
    out = []
    for s in qs:
        done = set(s.results.filter(state=ResultState.CURRENT).values_list("test_id", flat=True))
        tests = [(i.test, codes[i.test_id]) for i in s.items.all()
                 if i.test_id in codes and i.test_id not in done]  # fmt: skip
        if tests:
            out.append((s, tests))
    return out


def results_for(specimen: Specimen, tests, rng: random.Random) -> list[tuple]:
    rows = []
    for test, code in tests:
        value, flag = realistic_value(test, specimen, rng)
        patient = specimen.order.encounter.patient
        r = range_for(test, patient.sex, patient.birth_date, specimen.collected_at.date())
        rng_text = ""
        if r is not None and r.low is not None and r.high is not None:
            rng_text = f"{r.low.normalize():f}-{r.high.normalize():f}"
        rows.append((code, test.name, value, test.unit, rng_text, flag))
    return rows


def _connect_to(analyzer: Analyzer) -> str:
    """Where the listener is reached: a wildcard listen address means this machine."""
    wildcard = ("0.0.0.0", "::", "")  # noqa: S104 - compared, not bound
    return "127.0.0.1" if analyzer.host in wildcard else analyzer.host


def send_hl7(analyzer: Analyzer, specimen: Specimen, rows: list[tuple], *, query: bool,
             timeout: float = 10.0) -> str:  # fmt: skip
    """Over MLLP: the host query (its answer is two messages), then the result; returns
    the MSA-1 code of the result's acknowledgement."""
    dialect = analyzer.dialect or {}
    style = "mindray" if dialect.get("ack_style", "ihe") == "mindray" else "ihe"
    with socket.create_connection((_connect_to(analyzer), analyzer.port), timeout=timeout) as sock:
        buffer = hl7v2.MllpBuffer()
        if query:
            sock.sendall(hl7v2.frame(hl7v2.build_query(specimen.accession, style=style)))
            _read_frames(sock, buffer, 2, timeout)  # QCK + DSR (or RSP + OML)
        patient = specimen.order.encounter.patient.full_name
        oru = hl7v2.build_oru(specimen.accession, rows, style=style, patient_name=patient)
        sock.sendall(hl7v2.frame(oru))
        [ack] = _read_frames(sock, buffer, 1, timeout)
    msa = next((seg for seg in ack.decode("utf-8", "replace").split("\r") if seg.startswith("MSA")),
               "")  # fmt: skip
    return msa.split("|")[1] if "|" in msa else "?"


def _read_frames(sock: socket.socket, buffer, count: int, timeout: float) -> list[bytes]:
    frames: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(frames) < count and time.monotonic() < deadline:
        data = sock.recv(65536)
        if not data:
            break
        frames.extend(buffer.feed(data))
    if len(frames) < count:
        raise TimeoutError(f"expected {count} answer(s), got {len(frames)}")
    return frames[:count]


def send_astm(analyzer: Analyzer, specimen: Specimen, rows: list[tuple], *, query: bool,
              timeout: float = 10.0) -> str:  # fmt: skip
    host = _connect_to(analyzer)
    with socket.create_connection((host, analyzer.port), timeout=timeout) as sock:
        if query:
            transmit(sock, astm_query(specimen.accession), timeout)
            receive(sock, timeout)  # the host's answer: the orders for this specimen
        message = astm.build_result_message(specimen.accession, rows)
        outcome = transmit(sock, message, timeout)
    return outcome


def astm_query(specimen_id: str) -> str:
    """An instrument's host query (LIS2-A2 Q record): "what do I run on this tube?"."""
    from django.utils import timezone

    now = timezone.localtime().strftime("%Y%m%d%H%M%S")
    return (f"H|\\^&|||BENHAN-SIM|||||||P|LIS2-A2|{now}\r"
            f"Q|1|^{specimen_id}||^^^ALL||||||||O\rL|1|N\r")  # fmt: skip


def transmit(sock: socket.socket, message: bytes | str, timeout: float) -> str:
    """Send one transmission as the instrument (E1381 sender)."""
    sender = astm.Sender(message, role="instrument", ack_timeout=timeout)
    sock.sendall(sender.start())
    sock.settimeout(0.2)
    deadline = time.monotonic() + timeout * 4
    while not sender.done and time.monotonic() < deadline:
        try:
            data = sock.recv(4096)
        except TimeoutError:
            for out in sender.poll():
                sock.sendall(out)
            continue
        if not data:
            break
        for out in sender.feed(data):
            sock.sendall(out)
    return sender.outcome or "unfinished"


def receive(sock: socket.socket, timeout: float) -> list[bytes]:
    """Receive one transmission from the host (E1381 receiver)."""
    rx = astm.Receiver()
    sock.settimeout(0.2)
    deadline = time.monotonic() + timeout
    got: list[bytes] = []
    while time.monotonic() < deadline:
        try:
            data = sock.recv(4096)
        except TimeoutError:
            continue
        if not data:
            break
        for out in rx.feed(data):
            sock.sendall(out)
        got.extend(rx.transmissions())
        if got and rx.idle:
            break
    return got


def simulate(
    *, analyzer_name: str | None = None, accession: str | None = None, limit: int = 50,
    query: bool = True, seed: int | None = None,
) -> list[Sent]:  # fmt: skip
    rng = random.Random(seed)  # noqa: S311 - demo values, not secrets
    analyzers = Analyzer.objects.filter(active=True, transport=Analyzer.Transport.TCP,
                                        port__isnull=False)  # fmt: skip
    if analyzer_name:
        analyzers = analyzers.filter(name=analyzer_name)
    sent: list[Sent] = []
    for analyzer in analyzers:
        for specimen, tests in pending(analyzer, accession)[:limit]:
            rows = results_for(specimen, tests, rng)
            if analyzer.protocol == Analyzer.Protocol.HL7:
                reply = send_hl7(analyzer, specimen, rows, query=query)
            else:
                reply = send_astm(analyzer, specimen, rows, query=query)
            sent.append(Sent(analyzer.name, specimen.accession, len(rows), reply))
    return sent
