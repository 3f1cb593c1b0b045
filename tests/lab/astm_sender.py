"""An ASTM E1381 (CLSI LIS01-A2) client playing the analyzer, for the tests and the
simulator (`benhan analyzers simulate`).

Written apart from benhan.lab.astm on purpose: the listener is tested against a second,
independent reading of the standard, not against itself. It connects (or uses a given
socket), sends ENQ, frames with frame numbers 1…7, 0, 1… and checksums, retransmits on
NAK (a frame refused six times aborts the message), sends EOT, and can then stay on the
line as the receiver of the host's answers (query answers). Faults can be injected to see
the listener cope: a bad checksum, a frame sent twice, a skipped frame number, a
connection closed in the middle of a message.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Collection
from dataclasses import dataclass, field

ENQ, ACK, NAK, EOT = b"\x05", b"\x06", b"\x15", b"\x04"
STX, ETX, ETB, CR, LF = b"\x02", b"\x03", b"\x17", b"\r", b"\n"
MAX_SENDS = 6  # LIS01-A2: a frame sent and not accepted six times aborts the message


def frame(fn: int, text: bytes, final: bool, *, corrupt: bool = False) -> bytes:
    body = str(fn % 8).encode() + text + (ETX if final else ETB)
    total = sum(body) % 256
    if corrupt:
        total = (total + 1) % 256
    return STX + body + f"{total:02X}".encode() + CR + LF


def frame_texts(text: bytes, frame_size: int = 240) -> list[tuple[bytes, bool]]:
    """(text, final) for each frame: one record per frame, long records cut in pieces."""
    out = []
    for record in text.split(CR):
        if not record:
            continue
        record += CR
        pieces = [record[i : i + frame_size] for i in range(0, len(record), frame_size)]
        out += [(p, k == len(pieces) - 1) for k, p in enumerate(pieces)]
    return out


def normalize(records_text: str | bytes | list[str], encoding: str = "utf-8") -> bytes:
    if isinstance(records_text, list):
        records_text = "\r".join(records_text)
    if isinstance(records_text, str):
        records_text = records_text.encode(encoding)
    return records_text.replace(b"\r\n", b"\r").replace(b"\n", b"\r")


class Link:
    """A socket read one byte at a time with a deadline."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = bytearray()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, timeout: float) -> bytes:
        """One byte, or b"" when nothing came in time; ConnectionError when closed."""
        if not self.buffer:
            self.sock.settimeout(max(timeout, 0.001))
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                return b""
            if not data:
                raise ConnectionError("closed by the peer")
            self.buffer += data
        byte = bytes(self.buffer[:1])
        del self.buffer[:1]
        return byte

    def reply(self, timeout: float, wanted: bytes = ACK + NAK + EOT + ENQ) -> bytes:
        """The next byte among `wanted` (others are line noise), b"" on timeout."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            byte = self.read(left)
            if byte and byte in wanted:
                return byte
        return b""


@dataclass
class SendResult:
    completed: bool = False  # every frame acknowledged, EOT sent
    aborted: bool = False  # gave up: frame refused six times, ENQ refused, no reply
    dropped: bool = False  # closed the connection mid-message on purpose
    reason: str = ""
    enq_attempts: int = 0
    frames_sent: int = 0  # retransmissions and repeats included
    naks: int = 0
    replies: list[bytes] = field(default_factory=list)  # every reply, in order
    answers: list[bytes] = field(default_factory=list)  # host transmissions afterwards


def send_transmission(
    target: socket.socket | tuple[str, int],
    records_text: str | bytes | list[str],
    *,
    corrupt_checksum_frames: Collection[int] = (),
    corrupt_always_frames: Collection[int] = (),
    repeat_frames: Collection[int] = (),
    skip_frame_numbers: Collection[int] = (),
    drop_after_frames: int | None = None,
    frame_size: int = 240,
    timeout: float = 5.0,
    wait_answers: float = 0.0,
    enq_retry_delay: float = 10.0,
    contention_delay: float = 1.0,
    max_enq_attempts: int = 6,
    encoding: str = "utf-8",
) -> SendResult:
    """Send one transmission (ENQ … EOT) as an analyzer does.

    Frames are counted from 1 in the fault options: corrupt_checksum_frames get a wrong
    checksum the first time (the retransmission is right); corrupt_always_frames every
    time (the message is aborted after six NAKs); repeat_frames are sent a second time
    after their ACK (as when the ACK was lost); skip_frame_numbers carry the next frame
    number the first time (out of order); drop_after_frames=N closes the connection after
    the N-th frame's ACK, without EOT.

    wait_answers > 0: after EOT stay as the receiver and collect the host's transmissions
    until none starts within that many seconds. A (host, port) target is connected and
    closed here; a socket is left open (unless dropped).
    """
    text = normalize(records_text, encoding)
    own = not isinstance(target, socket.socket)
    sock = socket.create_connection(target, timeout=timeout) if own else target
    link = Link(sock)
    result = SendResult()
    try:
        if not _establish(link, result, timeout, enq_retry_delay, contention_delay,
                          max_enq_attempts):  # fmt: skip
            return result
        for index, (chunk, final) in enumerate(frame_texts(text, frame_size), 1):
            fn = index % 8
            sends = 0
            while True:
                first = sends == 0
                out = frame(
                    fn + 1 if first and index in skip_frame_numbers else fn, chunk, final,
                    corrupt=index in corrupt_always_frames
                    or (first and index in corrupt_checksum_frames),
                )  # fmt: skip
                link.send(out)
                sends += 1
                result.frames_sent += 1
                reply = link.reply(timeout)
                result.replies.append(reply)
                if reply in (ACK, EOT):  # EOT: a receiver interrupt, the frame is taken
                    break
                if reply == b"":  # LIS01-A2: no reply in 15 s → termination phase
                    link.send(EOT)
                    result.aborted, result.reason = True, f"no reply to frame {index}"
                    return result
                result.naks += 1
                if sends >= MAX_SENDS:
                    link.send(EOT)
                    result.aborted, result.reason = True, f"frame {index} refused {sends} times"
                    return result
            if index in repeat_frames:
                link.send(out)
                result.frames_sent += 1
                result.replies.append(link.reply(timeout))
            if drop_after_frames is not None and index >= drop_after_frames:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
                result.dropped, result.reason = True, f"dropped after frame {index}"
                return result
        link.send(EOT)
        result.completed = True
        while wait_answers > 0:
            answer = receive_transmission(link, timeout=wait_answers)
            if answer is None:
                break
            result.answers.append(answer)
        return result
    finally:
        if own and not result.dropped:
            sock.close()


def _establish(link: Link, result: SendResult, timeout: float, retry_delay: float,
               contention_delay: float, attempts: int) -> bool:  # fmt: skip
    while result.enq_attempts < attempts:
        link.send(ENQ)
        result.enq_attempts += 1
        reply = link.reply(timeout, ACK + NAK + ENQ)
        result.replies.append(reply)
        if reply == ACK:
            return True
        if reply == b"":
            link.send(EOT)
            result.aborted, result.reason = True, "no reply to ENQ"
            return False
        # NAK: the host is busy, ENQ again after 10 s. ENQ: contention; the instrument
        # keeps priority and sends ENQ again after 1 s (LIS01-A2 "Contention").
        time.sleep(retry_delay if reply == NAK else contention_delay)
    result.aborted, result.reason = True, "ENQ refused"
    return False


@dataclass
class Received:
    text: bytes = b""
    frames: list[bytes] = field(default_factory=list)  # every frame as it arrived
    naks_sent: int = 0


def receive_transmission(
    link: Link | socket.socket,
    *,
    timeout: float = 5.0,
    nak_frames: Collection[int] = (),
    details: Received | None = None,
) -> bytes | None:
    """Be the receiver for one transmission: wait up to `timeout` for ENQ, ACK it, ACK
    good frames (NAK bad checksums and wrong numbers, and the first arrival of each frame
    in nak_frames, counted from 1), return the joined text at EOT. None when no ENQ came
    or the transmission was abandoned."""
    if isinstance(link, socket.socket):
        link = Link(link)
    details = details if details is not None else Received()
    if link.reply(timeout, ENQ) != ENQ:
        return None
    link.send(ACK)
    text = bytearray()
    expected, accepted, nakked = 1, 0, set()
    while True:
        byte = link.reply(timeout, STX + EOT + ENQ)
        if byte == b"":
            return None  # receiver timeout: discard
        if byte == ENQ:
            return None  # started over (our caller may wait for the next transmission)
        if byte == EOT:
            return bytes(text) if accepted else None
        raw = bytearray(STX)
        while not raw.endswith(ETX) and not raw.endswith(ETB):
            b = link.read(timeout)
            if not b:
                return None
            raw += b
        for _ in range(4):  # C1 C2 CR LF
            raw += link.read(timeout)
        details.frames.append(bytes(raw))
        body, sent = bytes(raw[1:-4]), bytes(raw[-4:-2])
        good = f"{sum(body) % 256:02X}".encode() == sent.upper()
        fn = body[0] - 0x30
        position = accepted + 1
        if good and fn == expected % 8 and not (position in nak_frames and position not in nakked):
            text += body[1:-1]
            accepted += 1
            expected += 1
            link.send(ACK)
        elif good and accepted and fn == (expected - 1) % 8:
            link.send(ACK)  # a retransmission of the frame just accepted
        else:
            nakked.add(position)
            details.naks_sent += 1
            link.send(NAK)
        details.text = bytes(text)
