"""ASTM for laboratory analyzers: the E1381 / CLSI LIS01-A2 link (frames, ENQ/ACK/NAK/EOT,
timers, retransmission) and the E1394 / CLSI LIS2-A2 records (H P O R C Q M L).

A pure protocol module: no Django, no database. Bytes in, `benhan.lab.messages` shapes
out, and the host's answers back to bytes.

The link layer is two socket-free state machines, `Receiver` and `Sender`, fed bytes and
asked for bytes, with every timer either injected (a clock) or fired explicitly
(`timeout()`), so tests walk through them byte by byte. `serve_link` drives both over a
connected TCP socket or anything with `read`/`write` (a pyserial port):

    with conn:                                  # an accepted TCP connection
        serve_link(conn, on_message)
    port = serial.Serial("/dev/ttyUSB0", baudrate=9600, timeout=0.5)
    serve_link(port, on_message, stop=stop_event)   # serial has no "closed": use stop

`on_message(text)` gets each complete transmission (ENQ … EOT, frames joined) and
returns the answers to send back (host-query answers, built by `build_order_message`),
or None.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import logging
import re
import socket
import threading
import time
import unicodedata
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from benhan.lab.messages import Message, MessageError, Observation, PendingOrder, Query

log = logging.getLogger(__name__)

# --- E1381 / LIS01-A2: the low-level link ---------------------------------------------

ENQ = b"\x05"
ACK = b"\x06"
NAK = b"\x15"
EOT = b"\x04"
STX = b"\x02"
ETX = b"\x03"
ETB = b"\x17"
CR = b"\r"
LF = b"\n"
_ENQ, _ACK, _NAK, _EOT, _STX, _ETX, _ETB = 0x05, 0x06, 0x15, 0x04, 0x02, 0x03, 0x17

# LIS01-A2 "Frame": at most 247 characters, of which 240 are text; a longer record is
# split into intermediate (ETB) frames and one end (ETX) frame.
FRAME_TEXT_SIZE = 240
# LIS01-A2 "Timeouts" and "Establishment phase" / "Contention", in seconds.
RECEIVER_TIMEOUT = 30.0  # receiver: no frame or EOT 30 s after its last reply → neutral
SENDER_ACK_TIMEOUT = 15.0  # sender: no reply 15 s after ENQ or a frame → termination
ENQ_RETRY_DELAY = 10.0  # sender: ENQ answered NAK (receiver busy) → wait ≥ 10 s
CONTENTION_DELAY_HOST = 20.0  # host lost a contention → wait ≥ 20 s before its next ENQ
CONTENTION_DELAY_INSTRUMENT = 1.0  # instrument in contention → ENQ again after ≥ 1 s
CONTENTION_DELAY = CONTENTION_DELAY_HOST
# LIS01-A2 "Transfer phase": a frame "sent and not accepted six times" aborts the message.
MAX_RETRANSMITS = 6
MAX_ENQ_ATTEMPTS = 6  # ours: the standard does not bound ENQ retries after NAK
# Ours, against a babbling or hostile peer: frames may exceed 247 bytes (analyzers do),
# but not without bound; a whole transmission is bounded too.
MAX_FRAME_BYTES = 64 * 1024
MAX_TRANSMISSION_BYTES = 16 * 1024 * 1024


def checksum(body: bytes) -> bytes:
    """The frame checksum: the sum of the bytes from FN through ETB/ETX inclusive,
    modulo 256, as two uppercase hexadecimal ASCII characters (LIS01-A2 "Checksum")."""
    return b"%02X" % (sum(body) & 0xFF)


def make_frame(fn: int, text: bytes, final: bool = True) -> bytes:
    """STX FN text ETB|ETX C1 C2 CR LF, with FN = fn mod 8."""
    body = bytes([0x30 + fn % 8]) + text + (ETX if final else ETB)
    return STX + body + checksum(body) + CR + LF


def parse_frame(frame: bytes) -> tuple[int, bytes, bool]:
    """(frame number, text, final) of one complete frame; ValueError when it is not a
    frame or the checksum does not match (lowercase hex accepted, trailing CR LF optional)."""
    if len(frame) < 5 or frame[0] != _STX:
        raise ValueError("not a frame")
    end = frame.rstrip(b"\r\n")
    body, sent = end[1:-2], end[-2:]
    if len(body) < 2 or body[-1] not in (_ETX, _ETB) or not 0x30 <= body[0] <= 0x37:
        raise ValueError("malformed frame")
    if sent.upper() != checksum(body):
        raise ValueError("bad checksum")
    return body[0] - 0x30, bytes(body[1:-1]), body[-1] == _ETX


def build_frames(message: bytes, frame_size: int = FRAME_TEXT_SIZE) -> list[bytes]:
    """The frames of one transmission. LIS01-A2 puts each record in its own frame(s):
    a record (with its CR) longer than `frame_size` bytes goes out as ETB frames then one
    ETX frame. Frame numbers start at 1 and run modulo 8."""
    if frame_size < 1:
        raise ValueError("frame_size must be positive")
    records = [r + CR for r in message.replace(b"\r\n", b"\r").split(b"\r") if r]
    frames: list[bytes] = []
    for record in records:
        for start in range(0, len(record), frame_size):
            chunk = record[start : start + frame_size]
            final = start + frame_size >= len(record)
            frames.append(make_frame(len(frames) + 1, chunk, final))
    return frames


_IDLE, _BETWEEN, _IN_FRAME, _CHECKSUM = "idle", "transfer", "frame", "checksum"
_FRAME_STOP = re.compile(rb"[\x02\x03\x04\x05\x17]")  # what ends the text of a frame
_LINK_EVENT = re.compile(rb"[\x02\x04\x05]")  # what matters between frames
_HEX = frozenset(b"0123456789ABCDEFabcdef")


class Receiver:
    """The receiving side of E1381, byte by byte, without a socket.

    `feed(data)` returns the replies to write (ACK, NAK) in order; each transmission
    completed by EOT is queued for `transmissions()` and passed to `on_transmission`.
    The owner calls `timeout()` when no byte came for RECEIVER_TIMEOUT while not `idle`,
    and `reset()` when the connection drops: either way the partial transmission is
    discarded, never delivered.

    `busy` (a bool or a callable) is consulted on each ENQ: busy → NAK ("receiver not
    ready", LIS01-A2 "Establishment phase"), and the sender retries after 10 s.
    `counts` tallies what happened (ack, nak, bad_checksum, out_of_order, duplicate,
    discarded, …) for logs and tests.
    """

    def __init__(
        self,
        *,
        busy: bool | Callable[[], bool] = False,
        on_transmission: Callable[[bytes], None] | None = None,
        max_bytes: int = MAX_TRANSMISSION_BYTES,
    ):
        self.busy = busy
        self.on_transmission = on_transmission
        self.max_bytes = max_bytes
        self.counts: Counter[str] = Counter()
        self._done: list[bytes] = []
        self._state = _IDLE
        self._clear()

    # -- public ------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """True in the neutral state: no transmission under way."""
        return self._state == _IDLE

    def transmissions(self) -> list[bytes]:
        """The transmissions completed since the last call (and forget them)."""
        done, self._done = self._done, []
        return done

    def timeout(self) -> None:
        """The receiver timer ran out (LIS01-A2: 30 s without a frame or EOT): discard the
        incomplete transmission and return to the neutral state."""
        if self._state != _IDLE:
            self.counts["timeout"] += 1
            self._discard("timeout")

    def reset(self) -> None:
        """The connection is gone: discard anything partial."""
        if self._state != _IDLE:
            self._discard("reset")

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        i, n = 0, len(data)
        while i < n:
            state = self._state
            if state == _IN_FRAME:
                m = _FRAME_STOP.search(data, i)
                j = m.start() if m else n
                if j > i:
                    self._add_to_frame(data[i:j])
                if m is None:
                    break
                c, i = data[j], j + 1
                if c in (_ETX, _ETB):
                    self._term = c
                    self._state = _CHECKSUM
                else:
                    self._cut(c, out)
            elif state == _CHECKSUM:
                c = data[i]
                i += 1
                if c in (_STX, _EOT, _ENQ):  # never a checksum character
                    self._cut(c, out)
                    continue
                self._sum.append(c)
                if len(self._sum) == 2:
                    out.append(self._judge_frame())
                    self._state = _BETWEEN  # the CR LF that follow are skipped there
            elif state == _BETWEEN:
                m = _LINK_EVENT.search(data, i)
                if m is None:
                    break
                c, i = data[m.start()], m.start() + 1
                if c == _STX:
                    self._start_frame()
                elif c == _EOT:
                    self._end_of_transmission(cut=False)
                else:
                    self._enq(out, in_transfer=True)
            else:  # neutral: only ENQ means anything (a stray STX or EOT is ignored)
                j = data.find(b"\x05", i)
                if j < 0:
                    break
                i = j + 1
                self._enq(out, in_transfer=False)
        return out

    # -- internals ---------------------------------------------------------------------

    def _clear(self) -> None:
        self._text = bytearray()
        self._frame = bytearray()
        self._sum = bytearray()
        self._term = 0
        self._oversize = False
        self._expected_fn = 1  # LIS01-A2: the first frame of a transmission is 1
        self._last_fn = -1
        self._last_term = 0
        self._accepted = 0
        self._nak_pending = False

    def _discard(self, why: str) -> None:
        if self._accepted or self._frame:
            self.counts["discarded"] += 1
            log.info("ASTM: partial transmission discarded (%s, %d frames)", why, self._accepted)
        self._clear()
        self._state = _IDLE

    def _is_busy(self) -> bool:
        return bool(self.busy() if callable(self.busy) else self.busy)

    def _enq(self, out: list[bytes], *, in_transfer: bool) -> None:
        if in_transfer:
            # The sender has started over (it gave up on the previous transmission and
            # our receiver timer has not run yet, or its EOT was lost): what came before
            # is incomplete; answer this ENQ as a new establishment.
            self.counts["enq_in_transfer"] += 1
            self._discard("new ENQ")
        if self._is_busy():
            self.counts["busy"] += 1
            out.append(NAK)
            self._state = _IDLE
        else:
            self.counts["enq"] += 1
            out.append(ACK)
            self._clear()
            self._state = _BETWEEN

    def _cut(self, c: int, out: list[bytes]) -> None:
        """STX, EOT or ENQ inside a frame: the frame was cut short."""
        if c == _STX:  # a new frame begins: forget the broken one
            self.counts["cut_frame"] += 1
            self._start_frame()
        elif c == _EOT:  # the sender gave up in the middle of a frame
            self._end_of_transmission(cut=True)
        else:
            self._enq(out, in_transfer=True)

    def _start_frame(self) -> None:
        self._frame = bytearray()
        self._sum = bytearray()
        self._oversize = False
        self._state = _IN_FRAME

    def _add_to_frame(self, chunk: bytes) -> None:
        if self._oversize:
            return
        if len(self._frame) + len(chunk) > MAX_FRAME_BYTES:
            self._oversize = True
            return
        self._frame += chunk

    def _judge_frame(self) -> bytes:
        """ACK or NAK one complete frame (LIS01-A2 "Transfer phase", "Frame number",
        "Checksum"): a frame is refused for a bad checksum or for a frame number that is
        neither the expected one nor that of the frame last accepted."""
        frame, term = self._frame, self._term
        self._frame = bytearray()
        if self._oversize or not frame:
            return self._nak("malformed")
        if len(self._sum) != 2 or not _HEX.issuperset(self._sum):
            return self._nak("bad_checksum")
        if (sum(frame) + term) & 0xFF != int(self._sum, 16):
            return self._nak("bad_checksum")
        fn = frame[0] - 0x30
        if fn == self._expected_fn:
            text = frame[1:]
            if term == _ETX and not text.endswith(b"\r"):
                text += b"\r"  # a record's end frame without the record's CR
            if len(self._text) + len(text) > self.max_bytes:
                return self._nak("too_large")
            self._text += text
            self._last_fn, self._last_term = fn, term
            self._expected_fn = (fn + 1) % 8
            self._accepted += 1
            self._nak_pending = False
            self.counts["ack"] += 1
            return ACK
        if fn == self._last_fn and self._accepted:
            # The same number as the frame just accepted: our ACK was lost and the sender
            # retransmitted. Acknowledge it again, store it once. (A NAK just before was
            # for a damaged copy of this retransmission: nothing is missing.)
            self.counts["duplicate"] += 1
            self._nak_pending = False
            return ACK
        return self._nak("out_of_order")

    def _nak(self, why: str) -> bytes:
        self.counts[why] += 1
        self.counts["nak"] += 1
        self._nak_pending = True
        return NAK

    def _end_of_transmission(self, *, cut: bool) -> None:
        # The sender aborts a message with EOT too (after six NAKs, or when its own
        # timer runs): a refused frame still pending, a record left open by an ETB frame
        # or a frame cut in the middle mean the transmission is incomplete.
        if cut or self._nak_pending or self._last_term == _ETB:
            self.counts["aborted"] += 1
            self._discard("aborted by the sender")
            return
        text = bytes(self._text)
        self._clear()
        self._state = _IDLE
        if not text:
            self.counts["empty"] += 1  # ENQ then EOT: nothing to deliver
            return
        self.counts["transmissions"] += 1
        self._done.append(text)
        if self.on_transmission is not None:
            self.on_transmission(text)


_S_IDLE, _S_WAIT_ENQ, _S_RETRY, _S_WAIT_FRAME, _S_DONE = (
    "idle", "enq_sent", "enq_retry", "frame_sent", "done",
)  # fmt: skip


class Sender:
    """The sending side of E1381 for one transmission, without a socket.

    `start()` returns the ENQ to write; `feed(replies)` returns what to write next
    (frames, retransmissions, EOT); `poll()` fires the timer when `clock()` has reached
    `deadline`, `timeout()` fires it unconditionally. When `done`, `outcome` is one of
    "sent", "aborted" (a frame refused MAX_RETRANSMITS times), "timeout" (no reply for
    ack_timeout), "refused" (ENQ answered NAK max_enq_attempts times) or "contention"
    (the host yielded to the instrument's ENQ: feed `leftover` to the Receiver and try
    again after CONTENTION_DELAY_HOST).

    role "host" yields on contention; role "instrument" keeps priority and sends ENQ
    again after `contention_delay` (LIS01-A2 "Contention").
    """

    def __init__(
        self,
        message: bytes | str,
        *,
        role: str = "host",
        clock: Callable[[], float] = time.monotonic,
        frame_size: int = FRAME_TEXT_SIZE,
        ack_timeout: float = SENDER_ACK_TIMEOUT,
        enq_retry_delay: float = ENQ_RETRY_DELAY,
        contention_delay: float = CONTENTION_DELAY_INSTRUMENT,
        max_retransmits: int = MAX_RETRANSMITS,
        max_enq_attempts: int = MAX_ENQ_ATTEMPTS,
        encoding: str = "utf-8",
    ):
        if role not in ("host", "instrument"):
            raise ValueError("role is 'host' or 'instrument'")
        data = message.encode(encoding) if isinstance(message, str) else message
        self.frames = build_frames(data, frame_size)
        self.role = role
        self.clock = clock
        self.ack_timeout = ack_timeout
        self.enq_retry_delay = enq_retry_delay
        self.contention_delay = contention_delay
        self.max_retransmits = max_retransmits
        self.max_enq_attempts = max_enq_attempts
        self.state = _S_IDLE
        self.outcome = ""
        self.deadline: float | None = None
        self.leftover = b""
        self.enq_attempts = 0
        self.frames_sent = 0  # counting retransmissions
        self.naks = 0
        self.interrupt_requested = False
        self._index = 0
        self._tries = 0

    @property
    def done(self) -> bool:
        return self.state == _S_DONE

    def start(self) -> bytes:
        if self.state != _S_IDLE:
            raise RuntimeError("already started")
        return self._send_enq()

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        for k, c in enumerate(data):
            if self.state == _S_DONE:
                self.leftover += data[k:]
                break
            self._reply(c, out)
        return out

    def poll(self) -> list[bytes]:
        if self.deadline is not None and self.clock() >= self.deadline:
            return self.timeout()
        return []

    def timeout(self) -> list[bytes]:
        if self.state == _S_RETRY:
            if self.enq_attempts >= self.max_enq_attempts:
                return self._finish("refused", [])
            return [self._send_enq()]
        if self.state in (_S_WAIT_ENQ, _S_WAIT_FRAME):
            # LIS01-A2 "Timeouts": no reply within 15 s → termination phase (EOT).
            return self._finish("timeout", [EOT])
        return []

    # -- internals ---------------------------------------------------------------------

    def _send_enq(self) -> bytes:
        self.enq_attempts += 1
        self.state = _S_WAIT_ENQ
        self.deadline = self.clock() + self.ack_timeout
        return ENQ

    def _finish(self, outcome: str, out: list[bytes]) -> list[bytes]:
        self.state, self.outcome, self.deadline = _S_DONE, outcome, None
        return out

    def _send_frame(self, out: list[bytes]) -> None:
        out.append(self.frames[self._index])
        self.frames_sent += 1
        self.state = _S_WAIT_FRAME
        self.deadline = self.clock() + self.ack_timeout

    def _reply(self, c: int, out: list[bytes]) -> None:
        if self.state == _S_WAIT_ENQ:
            if c == _ACK:
                self._index, self._tries = 0, 0
                if not self.frames:
                    self._finish("sent", [])
                    out.append(EOT)
                else:
                    self._send_frame(out)
            elif c == _NAK:  # receiver not ready: ENQ again after 10 s
                self.state = _S_RETRY
                self.deadline = self.clock() + self.enq_retry_delay
            elif c == _ENQ:
                self._contention()
            # anything else: line noise, wait for a real reply or the timer
        elif self.state == _S_RETRY:
            if c == _ENQ and self.role == "host":
                self._contention()  # the instrument wants the line: let it have it
        elif self.state == _S_WAIT_FRAME:
            if c in (_ACK, _EOT):
                # EOT in place of ACK is a receiver interrupt request: the frame was
                # accepted; the sender may ignore the request, and we do (LIS01-A2
                # "Receiver interrupts").
                if c == _EOT:
                    self.interrupt_requested = True
                self._index += 1
                self._tries = 0
                if self._index >= len(self.frames):
                    self._finish("sent", [])
                    out.append(EOT)
                else:
                    self._send_frame(out)
            elif c == _NAK:
                self.naks += 1
                self._tries += 1
                if self._tries >= self.max_retransmits:
                    log.warning("ASTM: frame %d refused %d times, aborting", self._index + 1,
                                self._tries)  # fmt: skip
                    self._finish("aborted", [])
                    out.append(EOT)
                else:
                    self._send_frame(out)
            # Other characters: the standard counts them as NAK; on a TCP link they can
            # only be noise, and answering noise with a retransmission would shift every
            # later reply by one frame. The 15 s timer still guards a silent receiver.

    def _contention(self) -> None:
        if self.role == "host":
            # LIS01-A2 "Contention": the instrument has priority; the host stops, becomes
            # the receiver and answers the instrument's *next* ENQ (this one is dropped:
            # the instrument sends it again after 1 s).
            self.state, self.outcome, self.deadline = _S_DONE, "contention", None
        else:
            self.state = _S_RETRY
            self.deadline = self.clock() + self.contention_delay


# --- driving the link over a socket or a serial port ----------------------------------


_EOT_BYTE = 0x04
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class _SocketIO:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._timeout: float | None = None
        # Our EOT then our next ENQ must not wait for the peer's delayed ACK (OSError:
        # not TCP, e.g. a socketpair).
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def read(self, wait: float) -> bytes | None:
        """Bytes, b"" when nothing came within `wait`, None when the peer closed."""
        wait = max(round(wait, 3), 0.001)
        if wait != self._timeout:  # the wait is nearly always poll_interval: skip the call
            self.sock.settimeout(wait)
            self._timeout = wait
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return b""
        except OSError:
            return None
        if _EOT_BYTE in data and _QUICKACK is not None:
            # Nothing answers an EOT, so the kernel would hold its TCP acknowledgement
            # back (delayed ACK, 40 ms on Linux) while an analyzer with Nagle's algorithm
            # on holds its next ENQ until that acknowledgement comes: 40 ms lost per
            # message. Acknowledge at once.
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        return data or None

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)


class SerialLike(Protocol):
    """What serve_link needs of a port that is not a socket: pyserial's Serial."""

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...


class _StreamIO:
    """pyserial (or any object with read/write): read() returns b"" on its own timeout;
    a serial line is never "closed", so serve_link runs until `stop` is set."""

    def __init__(self, port: SerialLike):
        self.port = port
        if getattr(port, "timeout", 0) is None:
            port.timeout = 0.2  # blocking forever would never let the timers run

    def read(self, wait: float) -> bytes | None:
        waiting = getattr(self.port, "in_waiting", 0) or 1
        try:
            return self.port.read(waiting) or b""
        except OSError:
            return None

    def write(self, data: bytes) -> None:
        self.port.write(data)
        flush = getattr(self.port, "flush", None)
        if flush is not None:
            flush()


@dataclass
class _Outgoing:
    text: bytes
    attempts: int = 0


def serve_link(
    port: socket.socket | SerialLike,
    on_message: Callable[[bytes], Sequence[bytes | str] | None],
    *,
    busy: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.monotonic,
    receiver_timeout: float = RECEIVER_TIMEOUT,
    ack_timeout: float = SENDER_ACK_TIMEOUT,
    enq_retry_delay: float = ENQ_RETRY_DELAY,
    contention_delay: float = CONTENTION_DELAY_HOST,
    stop: threading.Event | None = None,
    poll_interval: float = 0.5,
    frame_size: int = FRAME_TEXT_SIZE,
    max_send_attempts: int = 2,
) -> Counter[str]:
    """Run the host's side of one E1381 link until the peer closes it (TCP) or `stop`
    is set. Returns the tallies of what happened.

    `port` is a connected socket, or an object with read(n)/write(data) such as
    `serial.Serial(device, baudrate=9600, timeout=0.5)` (its timeout is how often the
    timers are checked). The socket is not closed here: the caller owns it.

    Each complete transmission goes to `on_message` (called in this thread; a partial one
    never does). Whatever it returns is sent back, one transmission per item, once the
    line is free: after the analyzer's EOT the host becomes the sender. If the analyzer
    sends ENQ at the same time (contention) the host yields, receives, and tries again
    `contention_delay` later. An answer that cannot be delivered (refused, aborted, timed
    out) is tried `max_send_attempts` times, then dropped and counted.
    """
    io = _SocketIO(port) if isinstance(port, socket.socket) else _StreamIO(port)
    rx = Receiver(busy=busy)
    outbox: deque[_Outgoing] = deque()
    tx: Sender | None = None
    send_after = 0.0
    last_byte = clock()
    counts: Counter[str] = Counter()

    def finish_sender(sender: Sender, now: float) -> bytes:
        nonlocal send_after
        item = outbox[0]
        if sender.outcome == "sent":
            counts["answers_sent"] += 1
            outbox.popleft()
        elif sender.outcome == "contention":
            counts["contention"] += 1
            send_after = now + contention_delay
        else:
            item.attempts += 1
            counts[f"answer_{sender.outcome}"] += 1
            if item.attempts >= max_send_attempts:
                counts["answers_dropped"] += 1
                log.warning("ASTM: answer dropped after %d attempts (%s)", item.attempts,
                            sender.outcome)  # fmt: skip
                outbox.popleft()
            else:
                send_after = now + enq_retry_delay
        return sender.leftover

    try:
        while stop is None or not stop.is_set():
            now = clock()
            if tx is None and outbox and rx.idle and now >= send_after:
                tx = Sender(outbox[0].text, role="host", clock=clock, frame_size=frame_size,
                            ack_timeout=ack_timeout, enq_retry_delay=enq_retry_delay)  # fmt: skip
                io.write(tx.start())
            wait = poll_interval
            if tx is not None:
                if tx.deadline is not None:
                    wait = min(wait, tx.deadline - now)
            elif not rx.idle:
                wait = min(wait, last_byte + receiver_timeout - now)
            elif outbox:
                wait = min(wait, send_after - now)
            data = io.read(wait)
            if data is None:
                break
            now = clock()
            if tx is not None:
                for out in tx.poll() if not data else tx.feed(data):
                    io.write(out)
                if not tx.done:
                    continue
                data = finish_sender(tx, now)
                tx = None
            if data:
                last_byte = now
                for out in rx.feed(data):
                    io.write(out)
                for text in rx.transmissions():
                    try:
                        answers = on_message(text)
                    except Exception:
                        # One bad message must not take the link down; the owner logs
                        # and stores inside on_message, this is the last resort.
                        log.exception("ASTM: on_message failed")
                        counts["on_message_errors"] += 1
                        continue
                    for answer in answers or ():
                        raw = answer.encode("utf-8") if isinstance(answer, str) else answer
                        outbox.append(_Outgoing(raw))
            elif not rx.idle and now - last_byte >= receiver_timeout:
                rx.timeout()
    except OSError as e:  # a write to a connection the analyzer has dropped
        log.info("ASTM: link lost: %s", e)
        counts["write_errors"] += 1
    finally:
        rx.reset()
        counts.update(rx.counts)
        if outbox:
            counts["answers_unsent"] += len(outbox)
    return counts


# --- E1394 / LIS2-A2: records --------------------------------------------------------


@dataclass(frozen=True)
class Delimiters:
    """LIS2-A2 "Delimiters": declared by the H record, right after the "H"."""

    field: str = "|"
    repeat: str = "\\"
    component: str = "^"
    escape: str = "&"

    @property
    def header(self) -> str:
        return f"H{self.field}{self.repeat}{self.component}{self.escape}"


DEFAULT_DELIMITERS = Delimiters()
DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"  # ASTM timestamps carry no zone: the clinic's


class _Codec:
    """Escape handling for one message's delimiters (LIS2-A2 "Escape delimiter":
    &F& field, &S& component, &R& repeat, &E& escape, &Xhh…& hexadecimal bytes)."""

    def __init__(self, d: Delimiters):
        self.d = d
        e = re.escape(d.escape) if d.escape else None
        self._unescape = re.compile(f"{e}(F|S|R|E|X[0-9A-Fa-f]*){e}") if e else None
        self._map = {"F": d.field, "S": d.component, "R": d.repeat, "E": d.escape}

    def unescape(self, s: str) -> str:
        if self._unescape is None or self.d.escape not in s:
            return s
        return self._unescape.sub(self._sub, s)

    def _sub(self, m: re.Match) -> str:
        code = m.group(1)
        if code[0] != "X":
            return self._map[code]
        try:
            raw = bytes.fromhex(code[1:])
        except ValueError:
            return m.group(0)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")

    def components(self, s: str) -> list[str]:
        return [self.unescape(c) for c in s.split(self.d.component)]

    def repeats(self, s: str) -> list[str]:
        return s.split(self.d.repeat)

    def text(self, s: str) -> str:
        """A field as sent: escapes decoded when it is one plain value; kept verbatim
        when it has components or repeats (decoding would make them ambiguous)."""
        if self.d.component in s or self.d.repeat in s:
            return s
        return self.unescape(s)


@dataclass
class _Record:
    type: str
    fields: list[str]
    raw: str

    def f(self, n: int) -> str:
        """Field n as numbered by LIS2-A2: n = 1 is the record type."""
        return self.fields[n - 1] if 0 < n <= len(self.fields) else ""


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FRAMED = re.compile(rb"\x02[0-7]([^\x02\x03\x17]*)(\x03|\x17)[0-9A-Fa-f]{0,2}\r?\n?")


def deframe(data: bytes) -> bytes:
    """The text of a raw E1381 capture (STX FN … ETX C1 C2 CR LF, checksums not checked):
    parse() accepts a logged byte stream as well as a joined transmission."""
    out = bytearray()
    for m in _FRAMED.finditer(data):
        out += m.group(1)
        if m.group(2) == ETX and not m.group(1).endswith(b"\r"):
            out += b"\r"
    return bytes(out)


def decode_text(data: bytes | str, encoding: str | None = None) -> tuple[str, str]:
    """(text, encoding used). ASTM is nominally 8-bit without a declared character set;
    UTF-8 is tried first (strict, so 8-bit text never passes as UTF-8), then cp1258 (the
    Vietnamese Windows code page, with its combining tone marks recomposed), then latin-1,
    which decodes anything."""
    if isinstance(data, str):
        return unicodedata.normalize("NFC", data), "str"
    for enc in (encoding,) if encoding else ("utf-8", "cp1258", "latin-1"):
        try:
            return unicodedata.normalize("NFC", data.decode(enc)), enc
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("latin-1"), "latin-1"


def _delimiters(record: str) -> Delimiters:
    """The delimiters declared by an H record: H, field delimiter, then repeat, component
    and escape up to the next field delimiter (the escape is optional in practice)."""
    if len(record) < 4:
        raise MessageError("bad delimiters: header record too short", "AR")
    fd = record[1]
    end = record.find(fd, 2)
    spec = record[2:] if end < 0 else record[2:end]
    if not 2 <= len(spec) <= 3:
        raise MessageError("bad delimiters in the header record", "AR")
    chars = [fd, *spec]
    if len(set(chars)) != len(chars) or any(c.isalnum() or c.isspace() for c in chars):
        raise MessageError("bad delimiters in the header record", "AR")
    return Delimiters(fd, spec[0], spec[1], spec[2] if len(spec) == 3 else "")


def parse_timestamp(value: str, tz: ZoneInfo | None = None) -> datetime | None:
    """LIS2-A2 "Date and time": YYYYMMDD[HH[MM[SS]]], tolerant of separators, fractions
    and a trailing ±hhmm offset; None when it is not a date. Without an offset the clinic's
    zone is assumed."""
    return _timestamp(value, tz or ZoneInfo(DEFAULT_TIMEZONE))


@functools.lru_cache(maxsize=1024)  # a message repeats the same few timestamps
def _timestamp(value: str, tz: ZoneInfo) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    offset = None
    m = re.search(r"([+-])(\d{2}):?(\d{2})$", value)
    if m and len(re.sub(r"\D", "", value[: m.start()])) >= 8:
        sign = 1 if m.group(1) == "+" else -1
        offset = sign * (int(m.group(2)) * 60 + int(m.group(3)))
        value = value[: m.start()]
    digits = re.sub(r"\D", "", value.split(".")[0])
    if len(digits) < 8 or len(digits) > 14:
        return None
    digits = digits.ljust(14, "0")
    try:
        parts = [int(digits[a:b]) for a, b in ((0, 4), (4, 6), (6, 8), (8, 10), (10, 12))]
        dt = datetime(*parts, min(int(digits[12:14]), 59), tzinfo=tz)
    except ValueError:
        return None
    if offset is not None:
        dt = dt.replace(tzinfo=_dt.timezone(_dt.timedelta(minutes=offset)))
    return dt


def split_records(text: str) -> list[str]:
    """Records are separated by CR; CR LF and a bare LF are tolerated (LF cannot occur
    inside ASTM text)."""
    lines = (_CONTROL.sub("", line) for line in re.split(r"\r\n|\r|\n", text))
    return [line for line in lines if line.strip()]


def _field_ref(ref: str) -> tuple[str, int]:
    m = re.fullmatch(r"\s*([A-Za-z])\.?(\d+)\s*", str(ref))
    if not m:
        raise ValueError(f"bad field reference {ref!r}")
    return m.group(1).upper(), int(m.group(2))


def parse(text: bytes | str, dialect: Mapping | None = None) -> Message:
    """One ASTM transmission (or a raw framed capture) → Message(protocol="astm").

    Several H … L messages in one transmission are read as one Message. A transmission
    whose last message has no L record was cut short and is refused (AE) unless the
    dialect says `allow_missing_terminator`.

    Dialect options (all optional; unknown keys are ignored, being other layers'):
      specimen_field: "O.3" | "O.4"   where the specimen id is looked for first
      specimen_fields: ["O.4", "O.3", "P.3"]   the whole search order
      specimen_component: int   its component (0-based), exactly; by default O.3 gives
                                its first component ("SID^tray^pos"), O.4 and P.n
                                their first non-empty one ("^^SID^B")
      test_component: int       the R.3 component with the test code (default 3)
      query_specimen_component: int   the Q.3 component with the specimen id
      qc_specimen_prefixes: ["QC", …]  specimen ids that are quality control
      timezone: "Asia/Ho_Chi_Minh"     the zone of timestamps without an offset
      encoding: "utf-8" | "cp1258" | …  force the character set
      allow_missing_terminator: bool
    """
    dialect = dialect or {}
    try:
        return _Parser(dialect).run(text)
    except MessageError:
        raise
    except Exception as e:  # a parser bug must still come out as a refusal, not a crash
        log.exception("ASTM: unexpected parse failure")
        raise MessageError(f"unreadable ASTM message ({type(e).__name__})", "AE") from e


class _Parser:
    def __init__(self, dialect: Mapping):
        self.dialect = dialect
        try:
            self.tz = ZoneInfo(str(dialect.get("timezone") or DEFAULT_TIMEZONE))
        except Exception:
            self.tz = ZoneInfo(DEFAULT_TIMEZONE)
        refs = dialect.get("specimen_fields")
        if not refs:
            first = dialect.get("specimen_field", "O.3")
            refs = [first, "O.3", "O.4", "P.3", "P.4"]
        self.specimen_refs = []
        for ref in refs:
            try:
                r = _field_ref(ref)
            except ValueError:
                continue
            if r not in self.specimen_refs:
                self.specimen_refs.append(r)
        self.specimen_component = _int(dialect.get("specimen_component"))
        self.test_component = _int(dialect.get("test_component"))
        self.query_component = _int(dialect.get("query_specimen_component"))
        prefixes = dialect.get("qc_specimen_prefixes") or ()
        self.qc_prefixes = tuple(str(p) for p in prefixes if str(p))
        self.handlers: dict[str, Callable[[_Record], bool]] = {
            "P": self._patient, "O": self._order, "R": self._result, "C": self._comment,
            "Q": self._query, "M": self._manufacturer, "L": self._terminator,
        }  # fmt: skip

    def run(self, text: bytes | str) -> Message:
        if isinstance(text, bytes | bytearray) and b"\x02" in text:
            text = deframe(bytes(text))
        decoded, encoding = decode_text(text, self.dialect.get("encoding"))
        lines = split_records(decoded)
        start = next((i for i, line in enumerate(lines) if line.startswith("H")), None)
        if start is None:
            raise MessageError("no header record", "AR")
        msg = Message(protocol="astm", message_type="ASTM")
        msg.extra.update(encoding=encoding, messages=0, orders=[], patients=[])
        if start:
            msg.extra["ignored_before_header"] = lines[:start]
        self.msg = msg
        self._header(lines[start])  # AR when its delimiters are unusable
        terminated = False
        for line in lines[start + 1 :]:
            if line.startswith("H") and len(line) > 1 and not line[1].isalnum():
                if not terminated and not self.dialect.get("allow_missing_terminator"):
                    raise MessageError("message without a terminator record before the "
                                       "next header", "AE")  # fmt: skip
                self._header(line)
                terminated = False
                continue
            rec = _Record(line[0], line.split(self.d.field), line)
            handler = self.handlers.get(rec.type)
            if len(rec.fields[0]) != 1 or handler is None:
                msg.extra.setdefault("unknown_records", []).append(line)
                continue
            terminated = handler(rec) or terminated
        if not terminated and not self.dialect.get("allow_missing_terminator"):
            raise MessageError("no terminator record (L): the transmission was cut short",
                               "AE")  # fmt: skip
        msg.extra["terminated"] = terminated
        obs = msg.observations
        msg.qc = msg.qc or (bool(obs) and all(o.qc for o in obs))
        return msg

    # -- records -----------------------------------------------------------------------

    def _header(self, line: str) -> None:
        self.d = _delimiters(line)
        self.c = _Codec(self.d)
        rec = _Record("H", line.split(self.d.field), line)
        msg = self.msg
        msg.extra["messages"] += 1
        self.patient: _Record | None = None
        self.order: dict | None = None
        self.last: dict | None = None  # the extra of what a C or M record follows
        self.header_qc = rec.f(12).strip().upper().startswith("Q")
        if msg.extra["messages"] > 1:
            return  # the first header describes the transmission
        msg.control_id = self.c.text(rec.f(3)).strip()
        msg.sending_application = self._comp(rec.f(5), 0).strip()
        msg.version = self.c.text(rec.f(13)).strip()
        msg.sent_at = parse_timestamp(rec.f(14), self.tz)
        msg.qc = self.header_qc
        msg.extra["processing_id"] = rec.f(12)
        msg.extra["receiver_id"] = self._comp(rec.f(10), 0)
        msg.extra["sender"] = self.c.components(rec.f(5))
        msg.extra["delimiters"] = line[1:5]

    def _comp(self, field: str, i: int) -> str:
        parts = self.c.components(self.c.repeats(field)[0])
        return parts[i] if i < len(parts) else ""

    def _patient(self, rec: _Record) -> bool:
        self.patient, self.order = rec, None
        ids = [self._comp(rec.f(n), 0).strip() for n in (3, 4, 5)]
        for pid in ids:
            if pid and pid not in self.msg.patient_ids:
                self.msg.patient_ids.append(pid)
        info = {"sequence": rec.f(2), "practice_id": ids[0], "laboratory_id": ids[1],
                "id3": ids[2], "name": self.c.text(rec.f(6)), "birth": rec.f(8),
                "sex": rec.f(9).strip()}  # fmt: skip
        self.msg.extra["patients"].append(info)
        self.last = info
        return False

    def _order(self, rec: _Record) -> bool:
        specimen, source = self._specimen(rec)
        action = rec.f(12).strip().upper()
        qc = action == "Q" or self.header_qc or self._qc_id(specimen)
        tests = [self._test_code(r)[0] for r in self.c.repeats(rec.f(5)) if r.strip()]
        order = {"sequence": rec.f(2), "specimen_id": specimen, "specimen_source": source,
                 "specimen_field": rec.f(3), "instrument_specimen_id": rec.f(4),
                 "tests": tests, "priority": rec.f(6), "action_code": action,
                 "specimen_type": self._comp(rec.f(16), 0), "report_type": rec.f(26),
                 "qc": qc, "comments": []}  # fmt: skip
        self.msg.extra["orders"].append(order)
        self.order, self.last = order, order
        return False

    def _result(self, rec: _Record) -> bool:
        c = self.c
        if self.order is None:  # a result without an order record: use the patient
            specimen, source = self._specimen(None)
            qc, order_seq, order_comments = self.header_qc or self._qc_id(specimen), "", []
        else:
            specimen, source = self.order["specimen_id"], self.order["specimen_source"]
            qc, order_seq = self.order["qc"], self.order["sequence"]
            order_comments = self.order["comments"]
        code, name = self._test_code(rec.f(3))
        flags = "~".join(c.unescape(f) for f in c.repeats(rec.f(7)) if f)
        observed = rec.f(13) or rec.f(12)
        extra = {"specimen_source": source, "universal_test_id": rec.f(3),
                 "order_sequence": order_seq, "order_comments": order_comments,
                 "operator": c.text(rec.f(11)), "started_at": rec.f(12),
                 "instrument": c.text(rec.f(14)), "nature": rec.f(8)}  # fmt: skip
        if self.order is not None and self.order["instrument_specimen_id"]:
            extra["instrument_specimen_id"] = self.order["instrument_specimen_id"]
        obs = Observation(
            specimen_id=specimen, test_code=code, test_name=name,
            value=c.text(rec.f(4)), unit=c.text(rec.f(5)),
            reference_range=c.text(rec.f(6)), flags=flags, status=rec.f(9).strip(),
            observed_at=parse_timestamp(observed, self.tz), qc=qc,
            sequence=_int(rec.f(2)) or len(self.msg.observations) + 1, extra=extra,
        )  # fmt: skip
        if observed and obs.observed_at is None:
            extra["observed_at_raw"] = observed
        self.msg.observations.append(obs)
        self.last = extra
        return False

    def _comment(self, rec: _Record) -> bool:
        parts = [p.strip() for p in self.c.components(self.c.repeats(rec.f(4))[0])]
        text = " ".join(p for p in parts if p)
        if text:
            target = self.last if self.last is not None else self.msg.extra
            target.setdefault("comments", []).append(text)
        return False

    def _query(self, rec: _Record) -> bool:
        ids: list[str] = []
        ranges: dict[str, str] = {}
        wants_all = False
        for rep in self.c.repeats(rec.f(3)):
            parts = [p.strip() for p in self.c.components(rep)]
            if self.query_component is not None:
                sid = parts[self.query_component] if self.query_component < len(parts) else ""
            elif len(parts) > 1 and parts[1]:
                sid = parts[1]  # LIS2-A2: patient id ^ specimen id ^ …
            else:
                sid = next((p for p in parts if p), "")
            if sid.upper() == "ALL":
                wants_all = True
            elif sid and sid not in ids:
                ids.append(sid)
                ranges[sid] = rep
        status = rec.f(13).strip().upper()
        query = Query(specimen_ids=ids, query_id=rec.f(2).strip(),
                      extra={"all": wants_all, "ranges": ranges, "tests": rec.f(5),
                             "status": status, "ending_range": rec.f(4)})  # fmt: skip
        self.msg.queries.append(query)
        self.last = query.extra
        return False

    def _manufacturer(self, rec: _Record) -> bool:
        self.msg.extra.setdefault("manufacturer_records", []).append(rec.raw)
        if self.last is not None and self.last is not self.msg.extra:
            self.last.setdefault("manufacturer_records", []).append(rec.raw)
        return False

    def _terminator(self, rec: _Record) -> bool:
        self.msg.extra["termination_code"] = rec.f(3).strip()
        self.patient, self.order, self.last = None, None, None
        return True

    # -- fields ------------------------------------------------------------------------

    def _specimen(self, order: _Record | None) -> tuple[str, str]:
        """The specimen id and the field it came from. O.3 is the host's specimen id,
        first component ("SID^tray^position" → SID); O.4 and the patient ids are read
        component-aware ("^^SID^B" → SID); a dialect's specimen_component is exact."""
        explicit = self.specimen_component
        for rtype, n in self.specimen_refs:
            rec = order if rtype == "O" else self.patient if rtype == "P" else None
            if rec is None:
                continue
            parts = [p.strip() for p in self.c.components(self.c.repeats(rec.f(n))[0])]
            if rtype == "O" and explicit is not None:
                value = parts[explicit] if 0 <= explicit < len(parts) else ""
            elif (rtype, n) == ("O", 3):
                value = parts[0]
            else:
                value = next((p for p in parts if p), "")
            if value:
                return value, f"{rtype}.{n}"
        return "", ""

    def _qc_id(self, specimen: str) -> bool:
        return bool(self.qc_prefixes) and specimen.startswith(self.qc_prefixes)

    def _test_code(self, field: str) -> tuple[str, str]:
        """R.3 / O.5 universal test id "^^^CODE^name…": the manufacturer's code is the
        4th component; otherwise the first non-empty one (Sysmex-style "^^^^WBC^1")."""
        parts = [p.strip() for p in self.c.components(self.c.repeats(field)[0])]
        i = 3 if self.test_component is None else self.test_component
        code = parts[i] if i < len(parts) else ""
        used = i
        if not code:
            used, code = next(((k, p) for k, p in enumerate(parts) if p), (-1, ""))
        name = parts[4] if len(parts) > 4 and used != 4 else ""
        return code, name if name != code else ""


def _int(value) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


# --- building messages -----------------------------------------------------------------


def escape(value: str, d: Delimiters = DEFAULT_DELIMITERS) -> str:
    """A value made safe inside a field: delimiters become escape sequences and control
    characters (CR would end the record) become spaces."""
    value = _CONTROL.sub(" ", str(value)).replace("\r", " ").replace("\n", " ")
    if d.escape:
        value = value.replace(d.escape, f"{d.escape}E{d.escape}")
    for ch, code in ((d.field, "F"), (d.component, "S"), (d.repeat, "R")):
        value = value.replace(ch, f"{d.escape}{code}{d.escape}" if d.escape else " ")
    return value


def fold_ascii(value: str) -> str:
    """Vietnamese without its diacritics ("Nguyễn Thị Đào" → "Nguyen Thi Dao"), for
    analyzers that show 8-bit text as garbage."""
    value = value.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", value)
    return (
        "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
        .encode("ascii", "replace")
        .decode("ascii")
    )


def _stamp(value: datetime | date | None, tz: ZoneInfo, with_time: bool = True) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(tz)
        return value.strftime("%Y%m%d%H%M%S" if with_time else "%Y%m%d")
    return value.strftime("%Y%m%d")


def _record(*fields: str) -> str:
    # LIS2-A2 lets a record stop after its last non-empty field.
    return "|".join(fields).rstrip("|")


def _name(full: str) -> str:
    """A name as LIS2-A2 wants it (last ^ first …): "Nguyễn Văn An" → "Nguyễn^Văn An",
    as Vietnamese puts the family name first. A name already in components is kept."""
    if "^" in full:
        return "^".join(escape(p) for p in full.split("^"))
    parts = full.split()
    if len(parts) < 2:
        return escape(full.strip())
    return f"{escape(parts[0])}^{escape(' '.join(parts[1:]))}"


def build_order_message(
    orders: Sequence[PendingOrder],
    *,
    host_name: str = "BENHAN",
    now: datetime | None = None,
    report_type: str = "Q",
    ascii_only: bool = False,
    instrument_ids: Mapping[str, str] | None = None,
    receiver_id: str = "",
    timezone: str = DEFAULT_TIMEZONE,
) -> str:
    """The host's answer to a query (LIS2-A2 "Request-information record"): for each
    specimen found, P then O with the tests as ^^^CODE repeats, action code N (new
    request), report type Q ("response to query"; "O" for an unsolicited download).

    A specimen that is unknown or has nothing to run gets an O with no tests and report
    type Y ("no order on record for this test"); when nothing at all was found the answer
    is just H and L|1|I ("no information available from last query").

    `instrument_ids` echoes the analyzer's own sample id (O.4, e.g. rack^position) per
    specimen, inserted as is in |\\^& syntax. `ascii_only` strips Vietnamese diacritics.
    """
    tz = ZoneInfo(timezone)
    now = now or datetime.now(tz)
    fold = fold_ascii if ascii_only else (lambda s: s)
    records = [_record("H", "\\^&", "", "", escape(fold(host_name)), "", "", "", "",
                       escape(receiver_id), "", "P", "1", _stamp(now, tz))]  # fmt: skip
    found = [o for o in orders if o.found and o.tests]
    instrument_ids = instrument_ids or {}
    if not found:
        records.append("L|1|I")
        return "\r".join(records) + "\r"
    for n, order in enumerate(orders, 1):
        sid = escape(fold(order.specimen_id))
        o = [""] * 26
        o[0], o[1], o[2] = "O", "1", sid
        o[3] = instrument_ids.get(order.specimen_id, "")
        if order.found and order.tests:
            records.append(_record("P", str(n), "", escape(fold(order.patient_id)), "",
                                   _name(fold(order.patient_name)), "",
                                   _stamp(order.birth_date, tz, with_time=False),
                                   escape(order.sex[:1].upper())))  # fmt: skip
            o[4] = "\\".join(f"^^^{escape(fold(t.code))}" for t in order.tests)
            o[5] = "S" if order.priority[:1].upper() == "S" else "R"
            o[7] = _stamp(order.collected_at, tz)
            o[11] = "N"
            o[15] = escape(fold(order.specimen_type))
            o[25] = report_type
        else:
            records.append(f"P|{n}")
            o[25] = "Y"
        records.append(_record(*o))
    records.append("L|1|N")
    return "\r".join(records) + "\r"


def build_result_message(
    specimen_id: str,
    results: Sequence[tuple[str, str, str, str, str, str]],
    *,
    qc: bool = False,
    instrument: str = "BENHAN-SIM",
    now: datetime | None = None,
    patient_id: str = "",
    patient_name: str = "",
    control_id: str = "",
    status: str = "F",
    operator: str = "admin",
    timezone: str = DEFAULT_TIMEZONE,
) -> str:
    """An analyzer's result message in the LIS2-A2 layout, for tests and the simulator:
    results are (code, name, value, unit, reference range, flags)."""
    tz = ZoneInfo(timezone)
    now = now or datetime.now(tz)
    ts = _stamp(now, tz)
    tests = "\\".join(f"^^^{escape(r[0])}" for r in results)
    records = [
        _record("H", "\\^&", escape(control_id), "", f"{escape(instrument)}^1.00", "", "",
                "", "", "BENHAN", "", "Q" if qc else "P", "LIS2-A2", ts),
        _record("P", "1", "", escape(patient_id), "", _name(patient_name)),
    ]  # fmt: skip
    o = [""] * 26  # O.1 … O.26
    o[0], o[1], o[2], o[4], o[5] = "O", "1", escape(specimen_id), tests, "R"
    o[6] = o[7] = o[14] = ts  # ordered, collected, received
    o[11] = "Q" if qc else ""  # action code Q: a quality-control specimen
    o[25] = "F"  # report type: final results
    records.append(_record(*o))
    for i, (code, name, value, unit, ref, flags) in enumerate(results, 1):
        records.append(_record("R", str(i), f"^^^{escape(code)}^{escape(name)}", escape(value),
                               escape(unit), escape(ref), escape(flags), "", status, "",
                               escape(operator), ts, ts, escape(instrument)))  # fmt: skip
    records.append("L|1|N")
    return "\r".join(records) + "\r"
