"""The analyzer listeners on real loopback sockets, with real clients: python-hl7's
MLLP client for HL7, an independent E1381 sender (astm_sender.py) for ASTM. What is
sent is stored before the answer, once, whatever comes on the wire."""

from __future__ import annotations

import io
import socket
import threading
import time

import pytest
from hl7.client import MLLPClient

from benhan.lab import astm, hl7v2
from benhan.lab.listeners import Listener
from benhan.lab.models import AnalyzerMessage, Result, ResultState, SpecimenStatus

from . import astm_sender

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = [("glu", "Glucose", "12.4", "mmol/L", "3.9-6.4", "H"),
        ("na", "Natri", "139", "mmol/L", "135-145", "N"),
        ("k", "Kali", "4.1", "mmol/L", "3.5-5.0", "N"),
        ("cl", "Clo", "101", "mmol/L", "98-106", "N")]  # fmt: skip


@pytest.fixture
def listen():
    """listen(analyzer) → (host, port) of a running listener; stopped after the test."""
    stop = threading.Event()
    started = []

    def run(analyzer):
        analyzer.port = 0  # any free port on 127.0.0.1
        listener = Listener(analyzer, stop)
        listener.bind()
        listener.start()
        assert listener.ready.wait(5) and listener.error is None
        started.append(listener)
        return listener.address

    yield run
    stop.set()
    for listener in started:
        listener.join(timeout=5)


def _ack_code(ack) -> str:
    text = ack.decode() if isinstance(ack, bytes) else str(ack)
    msa = next(s for s in text.replace("\n", "\r").split("\r") if s.startswith("MSA"))
    return msa.split("|")[1]


def test_hl7_result_is_stored_then_acknowledged(listen, hl7_analyzer, specimens):
    host, port = listen(hl7_analyzer)
    serum = specimens["serum"]
    with MLLPClient(host, port) as client:
        ack = client.send_message(hl7v2.build_oru(serum.accession, ROWS, style="mindray").decode())
    assert _ack_code(ack) == "AA"
    # Acknowledged once stored raw; the results are matched right after (the matcher).
    msg = AnalyzerMessage.objects.get()
    assert msg.outcome == "accepted" and bytes(msg.ack) and bytes(msg.raw).startswith(b"MSH|")
    _wait(lambda: AnalyzerMessage.objects.filter(matched_at__isnull=False).exists())
    msg.refresh_from_db()
    assert msg.results == 4
    serum.refresh_from_db()
    assert serum.status == SpecimenStatus.COMPLETE
    glu = Result.objects.get(test__code="GLU")
    assert (glu.value, glu.interpretation, glu.flags) == ("12.4", "H", "H")


def test_hl7_malformed_messages_get_ae_or_ar_never_a_crash(listen, hl7_analyzer, specimens):
    host, port = listen(hl7_analyzer)
    good = hl7v2.build_oru(specimens["serum"].accession, ROWS[:1], style="mindray").decode()
    cases = {
        "no MSH": "PID|1||123\rOBX|1|NM|glu||5.0",
        "wrong delimiters": good.replace("MSH|^~\\&|", "MSH|^~|", 1),
        "LF separators": good.replace("\r", "\n"),
        "unknown type": good.replace("ORU^R01", "ADT^A01", 1),
    }
    codes = {}
    with MLLPClient(host, port) as client:
        for name, text in cases.items():
            codes[name] = _ack_code(client.send_message(text))
        # The connection still works after all that.
        assert _ack_code(client.send_message(good)) == "AA"
    assert codes["no MSH"] == "AR" and codes["wrong delimiters"] == "AR"
    assert codes["LF separators"] in ("AE", "AR") and codes["unknown type"] == "AE"
    outcomes = sorted(AnalyzerMessage.objects.values_list("outcome", flat=True))
    assert outcomes.count("accepted") == 1 and len(outcomes) == 5
    assert all(m.reason for m in AnalyzerMessage.objects.exclude(outcome="accepted"))


def test_hl7_duplicate_is_stored_once_unknown_specimen_unmatched(listen, hl7_analyzer, specimens):
    host, port = listen(hl7_analyzer)
    oru = hl7v2.build_oru("99999999990", ROWS[:2], style="mindray", control_id="X1").decode()
    with MLLPClient(host, port) as client:
        assert _ack_code(client.send_message(oru)) == "AA"
        assert _ack_code(client.send_message(oru)) == "AA"  # our ACK was lost: resent
    assert AnalyzerMessage.objects.count() == 1
    _wait(lambda: Result.objects.count() == 2)
    assert list(Result.objects.values_list("state", flat=True)) == [ResultState.UNMATCHED] * 2


def test_hl7_host_query_mindray_and_ihe(listen, hl7_analyzer, specimens):
    host, port = listen(hl7_analyzer)
    serum = specimens["serum"]
    with socket.create_connection((host, port), timeout=5) as sock:
        buf = hl7v2.MllpBuffer()
        sock.sendall(hl7v2.frame(hl7v2.build_query(serum.accession, style="mindray")))
        frames = _read(sock, buf, 2)
    qck, dsr = (f.decode() for f in frames)
    assert "QCK^Q02" in qck and "DSR^Q03" in dsr
    assert all(code in dsr for code in ("glu", "na", "k", "cl"))
    hl7_analyzer.dialect = {"ack_style": "ihe"}
    hl7_analyzer.save()
    host, port = listen(hl7_analyzer)
    with socket.create_connection((host, port), timeout=5) as sock:
        buf = hl7v2.MllpBuffer()
        sock.sendall(hl7v2.frame(hl7v2.build_query(serum.accession, style="ihe")))
        rsp, oml = (f.decode() for f in _read(sock, buf, 2))
    assert "RSP^K11" in rsp and "OML^O33" in oml and serum.accession in oml
    assert AnalyzerMessage.objects.filter(outcome="query").count() == 2


def test_hl7_dropped_connection_stores_nothing(listen, hl7_analyzer, specimens):
    host, port = listen(hl7_analyzer)
    whole = hl7v2.frame(hl7v2.build_oru(specimens["serum"].accession, ROWS, style="mindray"))
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(whole[: len(whole) // 2])
    time.sleep(0.5)
    assert AnalyzerMessage.objects.count() == 0


def test_many_analyzers_sending_at_once(listen, hl7_analyzer, specimens):
    host, port = listen(hl7_analyzer)
    errors = []

    def send(n):
        try:
            with MLLPClient(host, port) as client:
                for i in range(10):
                    sid = f"9000000{n}{i:03d}"
                    ack = client.send_message(
                        hl7v2.build_oru(sid, ROWS[:2], style="mindray").decode()
                    )
                    assert _ack_code(ack) == "AA"
        except Exception as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert AnalyzerMessage.objects.count() == 40


def _read(sock, buf, count):
    frames = []
    while len(frames) < count:
        data = sock.recv(65536)
        assert data, "connection closed early"
        frames += buf.feed(data)
    return frames


# --- ASTM ---------------------------------------------------------------------------------


def test_astm_results_arrive_through_the_e1381_link(listen, astm_analyzer, specimens):
    host, port = listen(astm_analyzer)
    blood = specimens["whole_blood"]
    rows = [("WBC", "WBC", "7.2", "G/L", "4-10", "N"), ("HGB", "HGB", "98", "g/L", "120-150", "L"),
            ("PLT", "PLT", "15", "G/L", "150-400", "LL")]  # fmt: skip
    result = astm_sender.send_transmission(
        (host, port), astm.build_result_message(blood.accession, rows)
    )
    assert result.completed, result.reason
    _wait(lambda: Result.objects.filter(specimen=blood).count() == 3)
    by = {r.test.code: r for r in Result.objects.filter(specimen=blood)}
    assert by["HGB"].interpretation == "L" and by["PLT"].critical


def test_astm_faults_bad_checksum_repeat_and_drop(listen, astm_analyzer, specimens):
    host, port = listen(astm_analyzer)
    blood = specimens["whole_blood"]
    text = astm.build_result_message(blood.accession, [("WBC", "WBC", "7.2", "G/L", "", "N")])
    r = astm_sender.send_transmission((host, port), text, corrupt_checksum_frames=[2],
                                      repeat_frames=[3])  # fmt: skip
    assert r.completed and r.naks == 1
    _wait(lambda: Result.objects.count() == 1)
    assert AnalyzerMessage.objects.count() == 1  # the repeated frame is stored once
    dropped = astm_sender.send_transmission((host, port), text.replace("7.2", "8.8"),
                                            drop_after_frames=2)  # fmt: skip
    assert dropped.dropped
    time.sleep(0.5)
    assert AnalyzerMessage.objects.count() == 1  # the partial message is discarded


def test_astm_host_query_is_answered_with_the_orders(listen, astm_analyzer, specimens):
    from benhan.lab.simulate import astm_query

    host, port = listen(astm_analyzer)
    blood = specimens["whole_blood"]
    r = astm_sender.send_transmission((host, port), astm_query(blood.accession), wait_answers=2)
    assert r.completed and r.answers
    answer = r.answers[0].decode()
    assert blood.accession in answer and "^^^WBC" in answer and answer.startswith("H|")


def _wait(cond, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_astm_transmission_refused_by_the_database_is_spooled_not_lost(
    listen, astm_analyzer, specimens, settings, tmp_path, monkeypatch
):
    from django.core.management import call_command
    from django.db import DatabaseError

    from benhan.lab.ingest import Ingestor

    settings.DATA_DIR = tmp_path
    real = Ingestor.store
    monkeypatch.setattr(
        Ingestor, "store", lambda *a, **k: (_ for _ in ()).throw(DatabaseError("disk full"))
    )
    host, port = listen(astm_analyzer)
    blood = specimens["whole_blood"]
    text = astm.build_result_message(blood.accession, [("WBC", "WBC", "7.2", "G/L", "", "N")])
    assert astm_sender.send_transmission((host, port), text).completed
    _wait(lambda: list((tmp_path / "lab-spool").glob("*.astm")))
    assert AnalyzerMessage.objects.count() == 0
    monkeypatch.setattr(Ingestor, "store", real)
    call_command("lab", "spool", stdout=io.StringIO())
    assert AnalyzerMessage.objects.count() == 1 and Result.objects.get().value == "7.2"
    assert not list((tmp_path / "lab-spool").glob("*.astm"))


def test_astm_over_a_serial_port(astm_analyzer, specimens):
    """The serial transport, through a pseudo-terminal: pyserial opens the slave end as
    it would /dev/ttyUSB0; the test plays the analyzer on the master end."""
    import os
    import tty

    master, slave = os.openpty()
    tty.setraw(master)
    astm_analyzer.transport = "serial"
    astm_analyzer.serial_device = os.ttyname(slave)
    astm_analyzer.save()
    stop = threading.Event()
    listener = Listener(astm_analyzer, stop)
    listener.start()
    _wait(lambda: _opened_twice(os.ttyname(slave)))  # pyserial flushes input when it opens
    try:
        blood = specimens["whole_blood"]
        text = astm.build_result_message(blood.accession, [("WBC", "WBC", "6.6", "G/L", "", "N")])
        link = _PtyLink(master)
        sender = astm.Sender(text, role="instrument")
        link.write(sender.start())
        deadline = time.monotonic() + 15
        while not sender.done and time.monotonic() < deadline:
            data = link.read()
            for out in sender.feed(data) if data else sender.poll():
                link.write(out)
        assert sender.outcome == "sent"
        _wait(lambda: Result.objects.filter(specimen=blood, value="6.6").exists())
    finally:
        stop.set()
        listener.join(timeout=5)
        os.close(master)
        os.close(slave)


class _PtyLink:
    def __init__(self, fd):
        self.fd = fd

    def write(self, data: bytes) -> None:
        import os

        os.write(self.fd, data)

    def read(self) -> bytes:
        import os
        import select

        ready, _, _ = select.select([self.fd], [], [], 0.2)
        return os.read(self.fd, 4096) if ready else b""


def _opened_twice(path: str) -> bool:
    """True once a second descriptor of this process points at the tty (pyserial's)."""
    import os

    fds = os.listdir("/proc/self/fd")
    n = 0
    for fd in fds:
        try:
            n += os.readlink(f"/proc/self/fd/{fd}") == path
        except OSError:
            continue
    return n >= 2


def test_messages_left_unmatched_are_matched_at_start(hl7_analyzer, specimens, listen):
    """Stored and acknowledged, but its results were not matched (matching failed, or an
    earlier version matched later): the next listener start matches them."""
    import hashlib

    from django.utils import timezone

    serum = specimens["serum"]
    raw = hl7v2.build_oru(serum.accession, ROWS, style="mindray")
    AnalyzerMessage.objects.create(
        analyzer=hl7_analyzer, received_at=timezone.now(), raw=raw, size=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(), message_type="ORU^R01", outcome="accepted",
    )  # fmt: skip
    assert Result.objects.count() == 0
    listen(hl7_analyzer)
    _wait(lambda: Result.objects.filter(specimen=serum).count() == 4)
    _wait(lambda: AnalyzerMessage.objects.get().matched_at is not None)
    assert AnalyzerMessage.objects.get().results == 4


def test_a_matching_fault_keeps_the_message_and_acknowledges_it(
    hl7_analyzer, specimens, listen, monkeypatch
):
    """A fault of ours while matching (not of the message): the raw message is stored
    with the reason and acknowledged AA (sending it again would not help); the next
    start matches it."""
    from benhan.lab.ingest import Ingestor

    def broken(self, parsed):
        raise ValueError("a bug")

    monkeypatch.setattr(Ingestor, "_plan", broken)
    host, port = listen(hl7_analyzer)
    serum = specimens["serum"]
    with MLLPClient(host, port) as client:
        ack = client.send_message(hl7v2.build_oru(serum.accession, ROWS, style="mindray").decode())
    assert _ack_code(ack) == "AA"
    message = AnalyzerMessage.objects.get()
    assert message.matched_at is None and message.reason == "results not matched: a bug"
    assert Result.objects.count() == 0

    monkeypatch.undo()
    assert Ingestor(hl7_analyzer).match_pending() == 1
    message.refresh_from_db()
    assert message.matched_at is not None and message.results == 4
    assert Result.objects.filter(specimen=serum, state=ResultState.CURRENT).count() == 4


def test_benhan_lab_listen_runs_the_analyzers_and_checkpoints_sqlite(hl7_analyzer, specimens):
    """`benhan lab listen` as `benhan serve` starts it: its own process, a real analyzer
    connection, results stored; on SQLite its thread checkpoints the write-ahead log
    (its connections no longer do it inside an acknowledged commit); SIGTERM stops it."""
    import os
    import signal
    import subprocess
    import sys

    from django.db import connection

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        hl7_analyzer.port = s.getsockname()[1]
    hl7_analyzer.save()
    database = connection.settings_dict["NAME"]
    env = {**os.environ, "BENHAN_DB_NAME": str(database)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "benhan.cli", "lab", "listen"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert "listening" in proc.stdout.readline()
        serum = specimens["serum"]
        db_file = database if connection.vendor == "sqlite" else None
        before = os.stat(db_file).st_mtime_ns if db_file else 0
        with MLLPClient("127.0.0.1", hl7_analyzer.port) as client:
            ack = client.send_message(
                hl7v2.build_oru(serum.accession, ROWS, style="mindray").decode()
            )
        assert _ack_code(ack) == "AA"
        assert Result.objects.filter(specimen=serum, state=ResultState.CURRENT).count() == 4
        if db_file:
            # A few pages: SQLite's own checkpoint would wait for 1,000.
            _wait(lambda: os.stat(db_file).st_mtime_ns != before, timeout=5)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out


def test_several_connections_are_written_in_groups_and_all_answered(hl7_analyzer, specimens,
                                                                     listen):  # fmt: skip
    """Four connections to one analyzer's listener at once: their messages queue for the
    worker and are written in groups; every one is answered AA only once stored."""
    host, port = listen(hl7_analyzer)
    serum = specimens["serum"]
    acks: list[str] = []

    def send(k: int) -> None:
        with MLLPClient(host, port) as client:
            for i in range(10):
                raw = hl7v2.build_oru(serum.accession, ROWS, style="mindray",
                                      control_id=f"G{k}-{i}")  # fmt: skip
                acks.append(_ack_code(client.send_message(raw.decode())))

    threads = [threading.Thread(target=send, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert acks == ["AA"] * 40
    assert AnalyzerMessage.objects.filter(matched_at__isnull=False).count() == 40
    assert Result.objects.filter(specimen=serum).count() == 160
    assert Result.objects.filter(specimen=serum, state=ResultState.CURRENT).count() == 4


def test_a_group_broken_by_one_message_is_handled_again_one_by_one(hl7_analyzer):
    """If one job breaks the group's transaction (PostgreSQL aborts it), nothing of the
    group is answered as stored: each job runs again alone, and only the bad one fails."""
    from django.db import DatabaseError, connection
    from django.utils import timezone

    from benhan.lab.listeners import Worker

    stop = threading.Event()
    worker = Worker(stop)
    runs: list[str] = []

    def good(n: int) -> int:
        runs.append(f"good {n}")
        m = AnalyzerMessage.objects.create(
            analyzer=hl7_analyzer, received_at=timezone.now(), raw=b"x%d" % n, size=2,
            sha256=f"{n:064d}", outcome="accepted",
        )  # fmt: skip
        return m.pk

    def bad() -> None:
        runs.append("bad")
        with connection.cursor() as cursor:  # not in a savepoint of its own
            cursor.execute("SELECT * FROM no_such_table")

    jobs = [(good, 1), (bad,), (good, 2)]
    results: list = [None] * 3

    def call(i: int) -> None:
        try:
            results[i] = worker.call(*jobs[i])
        except DatabaseError as e:
            results[i] = e

    # Queue the three before the worker starts, so they form one group.
    threads = [threading.Thread(target=call, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    worker.start()
    for t in threads:
        t.join(timeout=15)
    stop.set()
    worker.join(timeout=5)
    assert runs[:3] == ["good 1", "bad", "good 2"]
    if connection.vendor == "postgresql":
        # The failed statement aborted the transaction: the group is run again, alone.
        assert runs[3:] == ["good 1", "bad", "good 2"]
    else:  # SQLite undoes the failed statement only: the group commits
        assert runs[3:] == []
    assert isinstance(results[1], DatabaseError)
    stored = set(AnalyzerMessage.objects.values_list("pk", flat=True))
    assert stored == {results[0], results[2]}
