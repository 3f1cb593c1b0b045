"""Analyzer listeners: one TCP server (or serial link) per active analyzer.

`benhan serve` starts `benhan lab listen`, which runs `run_forever()`: every active
analyzer of the database gets a listener thread on its host:port (TCP) or its serial
device; each connection gets its own thread (an analyzer keeps one connection open,
so a handful of threads). Blocking sockets and threads rather than asyncio: the work
per message is a database transaction through Django's ORM, which is synchronous, and
ASTM's timers map naturally onto socket timeouts.

Per message: parse (pure, benhan.lab.hl7v2 / benhan.lab.astm) → build the answer →
`Ingestor.store()` writes raw bytes, outcome, answer and results in one transaction →
only then the answer goes back. A connection dropped mid-message leaves nothing
stored (the partial frame is discarded); the analyzer sends it again.
"""

from __future__ import annotations

import logging
import queue
import socket
import sys
import threading
import time
from typing import IO

from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.backends.signals import connection_created

from benhan.lab import astm, hl7v2
from benhan.lab.ingest import Ingestor, writing_turn
from benhan.lab.messages import MessageError
from benhan.lab.models import Analyzer

log = logging.getLogger("benhan.lab")

RECV_SIZE = 65536
# An idle connection is kept this long without a byte (analyzers keep theirs open for
# days; this only reaps the dead ones).
IDLE_TIMEOUT = 3600.0
# SQLite copies its write-ahead log back into the database file (a checkpoint, with an
# fsync) inside whichever commit takes the log past 1,000 pages: that acknowledgement
# waited ~6 ms more, about one in a hundred. The listener process turns this off on its
# connections and checkpoints from a thread of its own this often instead (PASSIVE:
# the writers go on meanwhile). The web server's connections keep SQLite's default.
CHECKPOINT_SECONDS = 1.0
SWITCH_INTERVAL = 0.0005  # seconds; see run_forever()
# Messages handled together in one transaction by the worker, at most.
GROUP_MAX = 16
# Messages whose results could not be matched when they came (see Ingestor.store) are
# tried again this often.
REMATCH_SECONDS = 60.0


# --- HL7 v2 over MLLP -------------------------------------------------------------------


def handle_hl7(ingestor: Ingestor, raw: bytes, dialect: dict, peer: str = "") -> list[bytes]:
    """One MLLP frame in; the HL7 messages to send back (unframed), in order. Everything
    is written before the answer."""
    try:
        message = hl7v2.parse(raw, dialect)
    except MessageError as e:
        ack = hl7v2.build_ack(raw, e.code, e.reason, dialect)
        _store(ingestor, raw, None, ack, e, peer)
        return [ack]
    if message.queries:
        orders = [o for q in message.queries for o in ingestor.orders_for(q)]
        answers = hl7v2.answer_query(message, orders, dialect)
        if _store(ingestor, raw, message, answers[0] if answers else b"", None, peer) is None:
            return [hl7v2.build_ack(message, "AE", "could not store the query; send again",
                                    dialect)]  # fmt: skip
        return answers
    ack = hl7v2.build_ack(message, "AA", "", dialect)
    if message.message_type.startswith("ACK"):
        _store(ingestor, raw, message, b"", None, peer)  # an analyzer's answer to our OML
        return []
    if _store(ingestor, raw, message, ack, None, peer) is None:
        # Not stored: say so, and the analyzer sends it again.
        return [hl7v2.build_ack(message, "AE", "could not store the message; send again", dialect)]
    return [ack]


def _store(ingestor, raw, message, answer, error, peer):
    try:
        return ingestor.store(raw, message, ack=answer, error=error, peer=peer)
    except DatabaseError:
        log.exception("analyzer %s: message not stored", ingestor.analyzer.name)
        if not connection.in_atomic_block:  # inside the worker's group: it decides
            close_old_connections()
        return None


class _Job:
    __slots__ = ("args", "done", "error", "fn", "result")

    def __init__(self, fn, args):
        self.fn, self.args = fn, args
        self.result = self.error = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            self.result, self.error = self.fn(*self.args), None
        except Exception as e:  # handed to the connection thread that asked
            self.result, self.error = None, e


class Worker(threading.Thread):
    """Does the database work of every listener of the process, one message after
    another: the connection threads only read and write their sockets, and wait here.

    One thread working means no contention between connection threads for the
    interpreter lock and SQLite's write lock. Messages that arrive while it works are
    handled together in the next transaction (group commit: each acknowledged message
    must be on disk, and analyzers sending at once share one fsync instead of queueing
    for one each — what counts on an old machine's hard disk; on this project's test
    machine, CPU-bound, the difference is within its noise). Each message is in a
    savepoint of its own; the answers go back only after the commit, and if it fails
    each message is handled again alone."""

    def __init__(self, stop: threading.Event):
        super().__init__(name="lab-worker", daemon=True)
        self.stop = stop
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()

    def call(self, fn, *args):
        """Run fn(*args) in the worker: its result, or its exception raised here."""
        job = _Job(fn, args)
        self._queue.put(job)
        while not job.done.wait(0.5):
            if not self.is_alive():
                raise RuntimeError("the listeners' worker has stopped")
        if job.error is not None:
            raise job.error
        return job.result

    def run(self) -> None:
        try:
            while True:
                try:
                    jobs = [self._queue.get(timeout=0.5)]
                except queue.Empty:
                    if self.stop.is_set():
                        return
                    continue
                while len(jobs) < GROUP_MAX:
                    try:
                        jobs.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                self._group(jobs)
        finally:
            connection.close()

    def _group(self, jobs: list[_Job]) -> None:
        try:
            if len(jobs) == 1:
                jobs[0].run()
                return
            try:
                with writing_turn(), transaction.atomic():
                    for job in jobs:
                        job.run()
                    if connection.needs_rollback:
                        # A job's statement failed outside a savepoint of its own: the
                        # transaction would be rolled back, not committed. Say so, so
                        # that no answer goes out for what was not stored.
                        raise DatabaseError("a message broke the group's transaction")
            except DatabaseError:
                log.exception("a group of %d messages failed; handling them one by one",
                              len(jobs))  # fmt: skip
                close_old_connections()
                for job in jobs:
                    job.run()
        finally:
            for job in jobs:
                job.done.set()


def serve_hl7(conn: socket.socket, analyzer: Analyzer, stop: threading.Event, peer: str,
              worker: Worker) -> None:  # fmt: skip
    ingestor = Ingestor(analyzer)
    buffer = hl7v2.MllpBuffer()
    conn.settimeout(0.5)
    idle_since = time.monotonic()
    while not stop.is_set():
        try:
            data = conn.recv(RECV_SIZE)
        except TimeoutError:
            if time.monotonic() - idle_since > IDLE_TIMEOUT:
                break
            continue
        except OSError:
            break
        if not data:
            break
        idle_since = time.monotonic()
        try:
            frames = buffer.feed(data)
        except hl7v2.FrameTooLarge as e:
            # The oversized message is refused (AR, echoing its control id when its
            # header survived); the complete frames around it are handled as usual.
            log.warning("analyzer %s (%s): %s", analyzer.name, peer, e)
            conn.sendall(hl7v2.frame(hl7v2.build_ack(e.head, "AR", "message too large",
                                                     analyzer.dialect or {})))  # fmt: skip
            frames = e.frames
        for raw in frames:
            for reply in worker.call(handle_hl7, ingestor, raw, analyzer.dialect or {}, peer):
                conn.sendall(hl7v2.frame(reply))
    if buffer.pending:
        log.warning("analyzer %s (%s): connection closed mid-message; %d bytes discarded",
                    analyzer.name, peer, buffer.pending)  # fmt: skip


# --- ASTM E1381 / E1394 -------------------------------------------------------------------


def handle_astm(ingestor: Ingestor, raw: bytes, dialect: dict,
                peer: str = "") -> list[bytes] | None:  # fmt: skip
    """One complete transmission in; the transmissions to send back (query answers)."""
    try:
        message = astm.parse(raw, dialect)
    except MessageError as e:
        _store(ingestor, raw, None, b"", e, peer)
        return None
    # Q.13 "A": the analyzer cancels its request; Q.3 "ALL" asks for every pending
    # order — we answer only for the specimens named (an analyzer runs what it has).
    queries = [q for q in message.queries if q.extra.get("status") != "A" and q.specimen_ids]
    if message.queries and not queries:
        _store(ingestor, raw, message, b"", None, peer)
        return None
    if queries:
        orders = [o for q in queries for o in ingestor.orders_for(q)]
        answer = astm.build_order_message(orders, ascii_only=bool(dialect.get("ascii_only")))
        answer_bytes = answer.encode("utf-8") if isinstance(answer, str) else answer
        if _store(ingestor, raw, message, answer_bytes, None, peer) is None:
            return None
        return [answer_bytes]
    if _store(ingestor, raw, message, b"", None, peer) is None:
        spool(ingestor.analyzer, raw)
    return None


def spool_dir():
    from django.conf import settings

    return settings.DATA_DIR / "lab-spool"


def spool(analyzer: Analyzer, raw: bytes) -> None:
    """ASTM acknowledges each frame before the transmission ends, so a transmission the
    database refused at EOT cannot be refused on the wire any more: it is written to a
    spool file instead, and `benhan lab spool --replay` stores it later. Nothing is lost."""
    import hashlib

    folder = spool_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{analyzer.pk}-{hashlib.sha256(raw).hexdigest()}.astm"
    path.write_bytes(raw)
    log.error("analyzer %s: transmission not stored, spooled to %s", analyzer.name, path)


def replay_spool() -> tuple[int, int]:
    """Store the spooled transmissions; (stored, left)."""
    stored = left = 0
    folder = spool_dir()
    for path in sorted(folder.glob("*.astm")) if folder.exists() else []:
        analyzer = Analyzer.objects.filter(pk=int(path.name.split("-", 1)[0])).first()
        if analyzer is None:
            left += 1
            continue
        raw = path.read_bytes()
        try:
            message, error = astm.parse(raw, analyzer.dialect or {}), None
        except MessageError as e:
            message, error = None, e
        if _store(Ingestor(analyzer), raw, message, b"", error, "spool") is None:
            left += 1
            continue
        path.unlink()
        stored += 1
    return stored, left


def serve_astm(port, analyzer: Analyzer, stop: threading.Event, peer: str,
               worker: Worker) -> None:  # fmt: skip
    ingestor = Ingestor(analyzer)
    dialect = analyzer.dialect or {}
    counts = astm.serve_link(
        port, lambda raw: worker.call(handle_astm, ingestor, raw, dialect, peer), stop=stop
    )
    if counts.get("discarded"):
        log.warning("analyzer %s (%s): %s partial transmission(s) discarded", analyzer.name,
                    peer, counts["discarded"])  # fmt: skip


# --- Servers ------------------------------------------------------------------------------


class Listener(threading.Thread):
    """Accepts an analyzer's connections (TCP) or runs its serial link."""

    def __init__(self, analyzer: Analyzer, stop: threading.Event, *,
                 sock: socket.socket | None = None, worker: Worker | None = None):  # fmt: skip
        super().__init__(name=f"analyzer-{analyzer.pk}", daemon=True)
        self.analyzer = analyzer
        self.stop = stop
        self.sock = sock
        # The process's worker (run_forever), or one of its own.
        self.own_worker = worker is None
        self.worker = worker or Worker(stop)
        self.ready = threading.Event()
        self.error: Exception | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2] if self.sock else ("", 0)

    def bind(self) -> None:
        a = self.analyzer
        sock = socket.socket(socket.AF_INET6 if ":" in a.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((a.host, a.port or 0))
        sock.listen(8)
        sock.settimeout(0.5)
        self.sock = sock

    def run(self) -> None:
        if self.own_worker:
            self.worker.start()
        threading.Thread(target=self._match_pending, name=f"rematch-{self.analyzer.pk}",
                         daemon=True).start()  # fmt: skip
        try:
            if self.analyzer.transport == Analyzer.Transport.SERIAL:
                self.ready.set()
                self._serial()
                return
            if self.sock is None:
                self.bind()
        except Exception as e:
            self.error = e
            self.ready.set()
            log.error("analyzer %s: cannot listen: %s", self.analyzer.name, e)
            return
        self.ready.set()
        workers = []
        try:
            while not self.stop.is_set():
                try:
                    conn, addr = self.sock.accept()
                except TimeoutError:
                    continue
                except OSError:
                    break
                t = threading.Thread(target=self._connection, args=(conn, addr), daemon=True)
                t.start()
                workers.append(t)
                workers = [w for w in workers if w.is_alive()]
        finally:
            self.sock.close()
            for w in workers:
                w.join(timeout=2)

    def _match_pending(self) -> None:
        """Results stored unmatched (see Ingestor.store): matched at start, then looked
        for every REMATCH_SECONDS."""
        ingestor = Ingestor(self.analyzer)
        while True:
            try:
                n = ingestor.match_pending()
                if n:
                    log.info("analyzer %s: %d message(s) left unmatched are matched now",
                             self.analyzer.name, n)  # fmt: skip
            except DatabaseError:
                log.exception("analyzer %s: could not match earlier messages",
                              self.analyzer.name)  # fmt: skip
            finally:
                connection.close()
            if self.stop.wait(REMATCH_SECONDS):
                return

    def _connection(self, conn: socket.socket, addr) -> None:
        peer = f"{addr[0]}:{addr[1]}"
        log.info("analyzer %s: connected from %s", self.analyzer.name, peer)
        # A dead analyzer (power cut, cable pulled) is noticed by TCP keepalive.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        try:
            with conn:
                if self.analyzer.protocol == Analyzer.Protocol.HL7:
                    serve_hl7(conn, self.analyzer, self.stop, peer, self.worker)
                else:
                    serve_astm(conn, self.analyzer, self.stop, peer, self.worker)
        except Exception:
            log.exception("analyzer %s (%s): connection failed", self.analyzer.name, peer)
        finally:
            connection.close()  # this thread's database connection
            log.info("analyzer %s: %s disconnected", self.analyzer.name, peer)

    def _serial(self) -> None:
        import serial  # pyserial

        a = self.analyzer
        while not self.stop.is_set():
            try:
                with serial.Serial(a.serial_device, baudrate=a.baudrate, timeout=0.5) as port:
                    if a.protocol == Analyzer.Protocol.ASTM:
                        serve_astm(port, a, self.stop, a.serial_device, self.worker)
                    else:
                        _serial_hl7(port, a, self.stop, self.worker)
            except (OSError, serial.SerialException) as e:
                log.error("analyzer %s: serial port %s: %s", a.name, a.serial_device, e)
                self.stop.wait(5)
            finally:
                connection.close()


def _serial_hl7(port: IO, analyzer: Analyzer, stop: threading.Event, worker: Worker) -> None:
    ingestor = Ingestor(analyzer)
    buffer = hl7v2.MllpBuffer()
    while not stop.is_set():
        data = port.read(RECV_SIZE)
        if not data:
            continue
        for raw in buffer.feed(data):
            for reply in worker.call(handle_hl7, ingestor, raw, analyzer.dialect or {},
                                     analyzer.serial_device):  # fmt: skip
                port.write(hl7v2.frame(reply))


def start(analyzers, stop: threading.Event) -> list[Listener]:
    """A listener per analyzer, all with one worker (see Worker)."""
    worker = Worker(stop)
    worker.start()
    listeners = []
    for a in analyzers:
        listener = Listener(a, stop, worker=worker)
        listener.start()
        listener.ready.wait(5)
        listeners.append(listener)
    return listeners


def _no_autocheckpoint(sender, connection, **kwargs) -> None:
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_autocheckpoint=0")


class Checkpointer(threading.Thread):
    """Checkpoints SQLite's write-ahead log every CHECKPOINT_SECONDS (see above)."""

    def __init__(self, stop: threading.Event):
        super().__init__(name="sqlite-checkpoint", daemon=True)
        self.stop = stop

    def run(self) -> None:
        try:
            while not self.stop.wait(CHECKPOINT_SECONDS):
                try:
                    with connection.cursor() as cursor:
                        cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except DatabaseError:
                    log.exception("SQLite checkpoint failed; trying again")
                    close_old_connections()
        finally:
            connection.close()


def run_forever(stdout=None) -> None:
    """Start a listener for every active analyzer; stop on SIGTERM / Ctrl-C."""
    import signal

    # A connection thread waiting for the interpreter lock while another parses gets it
    # after the switch interval: 5 ms by default, which showed as ACK latency when several
    # analyzers send at once (four sharing 400 messages/s: p99 520 ms → 16 ms at 0.5 ms;
    # 0.1 ms was worse again). This process runs only the listeners.
    sys.setswitchinterval(SWITCH_INTERVAL)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    analyzers = list(Analyzer.objects.filter(active=True).exclude(transport="tcp", port=None))
    if connection.vendor == "sqlite":
        connection_created.connect(_no_autocheckpoint)
        Checkpointer(stop).start()
    connection.close()
    listeners = start(analyzers, stop)
    for listener in listeners:
        a = listener.analyzer
        where = a.serial_device if a.transport == "serial" else f"{a.host}:{a.port}"
        state = f"FAILED: {listener.error}" if listener.error else "listening"
        if stdout is not None:
            stdout.write(f"{a.name} ({a.get_protocol_display()}) on {where}: {state}\n")
            stdout.flush()
    if not listeners and stdout is not None:
        stdout.write("No active analyzer is configured (Settings → Analyzers).\n")
    while not stop.is_set():
        stop.wait(1)
    for listener in listeners:
        listener.join(timeout=3)
