"""HL7 v2 (2.3.1–2.5.1) from laboratory analyzers: MLLP framing, reading result and
query messages into the neutral shapes of benhan.lab.messages, and writing ACKs,
query answers and (for the simulator and tests) result messages.

A pure protocol module: no Django, no database, no sockets. The listener owns the
connection; it feeds bytes to an MllpBuffer, stores each frame, calls parse(), and sends
back build_ack() (results, errors) or answer_query() (host queries), each framed.

    buffer = MllpBuffer()
    for raw in buffer.feed(data):
        store(raw)                                     # before anything is answered
        try:
            message = parse(raw, dialect)
        except MessageError as exc:
            send(frame(build_ack(raw, exc.code, exc.reason, dialect)))
            continue
        if message.queries:
            for text in answer_query(message, orders_for(message), dialect):
                send(frame(text))
        elif message.message_type != "ACK":            # never acknowledge an ACK
            ingest(message)
            send(frame(build_ack(message, "AA", dialect=dialect)))

Dialect options (an analyzer's configuration, a plain dict; all optional). They tune
where fields are looked for and how answers are laid out, never whether a message is
read:

    ack_style             "ihe" (default) or "mindray": layout of ACKs (see build_ack)
    specimen_fields       where specimen ids are looked for, in order; default
                          ["OBR-2", "OBR-3", "SPM-2", "PID-2", "PID-3"]; any "SEG-n" or
                          "SEG-n.c" of PID, PV1, ORC, OBR, SPM, SAC or the OBX itself
    qc_specimen_prefixes  specimen ids / OBR-4 words that mark a QC run; default ["QC"]
    timezone              IANA zone for times sent without an offset; default
                          "Asia/Ho_Chi_Minh"
    charset               force the character set of incoming and outgoing messages
                          (an MSH-18 label such as "UNICODE UTF-8", or a Python codec
                          such as "cp1258") for an analyzer that mislabels its bytes
    our_application       our MSH-3 in the IHE layouts when the analyzer's MSH-5 is
                          empty (else we echo it); default "BENHAN"; also the assigning
                          authority of PID-3 in OML^O33
    our_facility          our MSH-4 likewise, when its MSH-6 is empty; default ""
    sample_types          {our specimen type: the analyzer's word} for Mindray DSP-26,
                          on top of MINDRAY_SAMPLE_TYPES
    mllp_bare_eb          MllpBuffer(bare_eb=...): a lone 0x1C ends a frame (for senders
                          that never send the final 0x0D); the listener passes it on

Why a hand-written splitter and not hl7.parse: python-hl7 builds a parse plan object per
field and takes 0.3–0.6 ms for one six-result Mindray ORU, more than the whole budget of
parse + ACK (0.5 ms; the ingestion target is 400 messages/s on one core with the
database). The splitting rules are the same (tests/lab/test_hl7v2.py checks every
sample field by field against hl7.parse), and python-hl7 remains the reference in the
tests and the MLLP client of the integration tests.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from benhan.lab.messages import Message, MessageError, Observation, PendingOrder, Query

__all__ = [
    "FrameTooLarge",
    "MllpBuffer",
    "answer_query",
    "build_ack",
    "build_oru",
    "build_query",
    "decode",
    "escape",
    "frame",
    "hl7_error_code",
    "parse",
]

Dialect = Mapping[str, Any]

SB = b"\x0b"  # MLLP start block
EB = b"\x1c"  # MLLP end block, followed by CR
CR = b"\x0d"

DEFAULT_MAX_FRAME = 4 * 1024 * 1024
DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"
DEFAULT_SPECIMEN_FIELDS = ("OBR-2", "OBR-3", "SPM-2", "PID-2", "PID-3")
DEFAULT_QC_PREFIXES = ("QC",)
OUR_APPLICATION = "BENHAN"

# ---------------------------------------------------------------------------------
# MLLP framing
# ---------------------------------------------------------------------------------


class FrameTooLarge(Exception):  # noqa: N818 -- the name the listener and the brief use
    """A frame grew past `max_frame`. The buffer has already dropped it and resyncs at
    the next 0x0B. `frames` holds the frames completed in the same feed() call (they
    must still be handled); `head` the first bytes of the dropped frame, enough for
    build_ack() to echo its MSH-10 in an AR."""

    def __init__(self, limit: int, head: bytes, frames: list[bytes]):
        super().__init__(f"MLLP frame larger than {limit} bytes")
        self.limit = limit
        self.head = head
        self.frames = frames


_HEAD_BYTES = 4096
_SB_OR_EB = re.compile(b"[\x0b\x1c]")


class MllpBuffer:
    """Reassembles MLLP frames (0x0B payload 0x1C 0x0D) from a TCP byte stream.

    Bytes outside frames are discarded (line noise, a sender's keep-alive). A 0x0B in the
    middle of a frame means the sender gave up on that message and started again: the
    partial one is dropped. A 0x1C not followed by 0x0D ends the frame only when the next
    byte is a 0x0B (a sender that forgets the CR between messages); otherwise it is taken
    as data. With bare_eb=True a lone 0x1C always ends the frame (senders that never send
    the CR and wait for our ACK before anything else).
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME, *, bare_eb: bool = False):
        self.max_frame = max_frame
        self.bare_eb = bare_eb
        self.discarded = 0  # bytes thrown away: noise, abandoned and oversize frames
        self._buf = bytearray()
        self._in_frame = False
        self._eb = False  # the frame so far ends in 0x1C, its CR not seen yet

    @property
    def pending(self) -> int:
        """Bytes of a frame started but not finished (0 between frames). When the
        connection drops these are what is lost: the listener discards them."""
        if not self._in_frame:
            return 0
        return 1 + len(self._buf) + (1 if self._eb else 0)

    def reset(self) -> None:
        """Forget a partial frame (the connection dropped)."""
        self.discarded += self.pending
        self._buf.clear()
        self._in_frame = False
        self._eb = False

    @staticmethod
    def frame(payload: bytes) -> bytes:
        return SB + payload + EB + CR

    def _finish(self, frames: list[bytes]) -> None:
        frames.append(bytes(self._buf))
        self._buf.clear()
        self._in_frame = False
        self._eb = False

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the frames they complete (payloads, unframed)."""
        frames: list[bytes] = []
        oversize: bytes | None = None
        buf = self._buf
        pos, n = 0, len(data)
        while pos < n:
            if not self._in_frame:
                start = data.find(SB, pos)
                if start < 0:
                    self.discarded += n - pos
                    break
                self.discarded += start - pos
                self._in_frame = True
                pos = start + 1
                continue
            if self._eb:
                byte = data[pos]
                if byte == 0x0D:
                    self._finish(frames)
                    pos += 1
                    continue
                if byte == 0x0B:  # CR missing, next frame starts: tolerated
                    self._finish(frames)
                    continue
                self._eb = False  # a 0x1C inside the payload: data after all
                buf += EB
            match = _SB_OR_EB.search(data, pos)
            end = match.start() if match else n
            if len(buf) + (end - pos) > self.max_frame:
                if oversize is None:
                    oversize = bytes(buf[:_HEAD_BYTES])
                    if len(oversize) < _HEAD_BYTES:
                        oversize += data[pos : pos + _HEAD_BYTES - len(oversize)]
                self.discarded += 1 + len(buf) + (end - pos)
                buf.clear()
                self._in_frame = False  # resync: skip to the next 0x0B
                pos = end
                continue
            buf += data[pos:end]
            pos = end
            if match is None:
                break
            if data[pos] == 0x0B:
                self.discarded += 1 + len(buf)
                buf.clear()  # restarted message: drop the partial one, stay in a frame
                pos += 1
                continue
            pos += 1  # the 0x1C
            if self.bare_eb:
                self._finish(frames)
            else:
                self._eb = True
        if oversize is not None:
            raise FrameTooLarge(self.max_frame, oversize, frames)
        return frames


def frame(payload: bytes) -> bytes:
    """Wrap one HL7 message in an MLLP frame."""
    return SB + payload + EB + CR


# ---------------------------------------------------------------------------------
# Character sets
# ---------------------------------------------------------------------------------

# MSH-18 labels (HL7 table 0211) and the non-standard ones analyzers send. "UNICODE" is
# UCS-2 in the letter of 2.3.1, but Mindray BC-series hematology and its OEM twins send
# "UNICODE" with UTF-8 bytes: UTF-8 it is.
_CHARSETS = {
    "ASCII": "ascii",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "UTF8": "utf-8",
    "UNICODE": "utf-8",
    "8859/1": "latin-1",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "GB 18030-2000": "gb18030",  # Chinese-market analyzers
    "BIG-5": "big5",
    "KS X 1001": "euc-kr",
    "CP1258": "cp1258",  # not in table 0211; Vietnamese Windows software says so
    "WINDOWS-1258": "cp1258",
}

# No MSH-18: UTF-8 if the bytes are valid UTF-8 (modern analyzers, our own messages),
# else Vietnamese Windows (cp1258, what Vietnamese-localised PCs beside the analyzers
# produce), else latin-1, which decodes anything.
_AUTO_CODECS = ("utf-8", "cp1258")


def _codec_for(label: str) -> str | None:
    label = label.strip().upper()
    if not label:
        return None
    codec = _CHARSETS.get(label)
    if codec is None and label.startswith("ISO"):
        codec = _CHARSETS.get(label.replace("ISO", "", 1).strip(" -_"))
    return codec


def _forced_codec(dialect: Dialect) -> str | None:
    forced = str(dialect.get("charset") or "").strip()
    if not forced:
        return None
    return _codec_for(forced) or forced


def _strip_lead(data: bytes) -> bytes:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.lstrip(b" \t\r\n\x00")


def _msh_line(data: bytes) -> bytes:
    end = len(data)
    for terminator in (b"\r", b"\n"):
        i = data.find(terminator)
        if 0 <= i < end:
            end = i
    return data[:end]


def _msh18(data: bytes) -> str:
    """MSH-18 read from the raw bytes: MSH is ASCII whatever the charset of the rest."""
    line = _msh_line(data)
    if len(line) < 9:
        return ""
    fs = line[3:4]
    parts = line.split(fs)
    if len(parts) < 18:  # parts[17] is MSH-18 (parts[1] is MSH-2)
        return ""
    value = parts[17]
    for sep in (line[5:6], line[4:5]):  # first repetition, first component
        if sep and sep != fs:
            value = value.split(sep)[0]
    return value.decode("latin-1").strip()


def _decode(data: bytes, dialect: Dialect) -> tuple[str, str]:
    forced = _forced_codec(dialect)
    if forced:
        try:
            return data.decode(forced), forced
        except LookupError:
            raise MessageError(
                f"unknown charset {forced!r} in the analyzer's dialect", "AR"
            ) from None
        except UnicodeDecodeError as exc:
            raise MessageError(
                f"bytes are not {forced} (byte 0x{data[exc.start]:02X} at offset {exc.start})",
                "AR",
            ) from exc
    label = _msh18(data)
    codec = _codec_for(label)
    if codec:
        try:
            return data.decode(codec), codec
        except UnicodeDecodeError as exc:
            raise MessageError(
                f"MSH-18 says {label} but byte 0x{data[exc.start]:02X} at offset {exc.start} "
                f"is not {label}",
                "AR",
            ) from exc
    # Empty or unknown label: an unknown label is no reason to refuse a message.
    for candidate in _AUTO_CODECS:
        try:
            return data.decode(candidate), candidate
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"


def decode(raw: bytes, dialect: Dialect | None = None) -> str:
    """The text of an HL7 message, in the character set MSH-18 declares (read from the
    bytes first: MSH is ASCII). "UNICODE UTF-8"/"UTF-8"/"UNICODE" → UTF-8, "8859/1" →
    latin-1, "ASCII" → ASCII (bytes that are not: MessageError AR), none → UTF-8, else
    cp1258 (Vietnamese Windows), else latin-1."""
    return _decode(_strip_lead(bytes(raw)), dialect or {})[0]


def _fold_ascii(text: str) -> str:
    """Vietnamese without its marks ("Nguyễn Thị Hằng" → "Nguyen Thi Hang"), for an
    analyzer set to ASCII: a readable name beats question marks on its screen."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _encode(text: str, codec: str) -> bytes:
    if codec in ("ascii", "us-ascii"):
        text = _fold_ascii(text)
    try:
        return text.encode(codec)
    except UnicodeEncodeError:
        return _fold_ascii(text).encode(codec, errors="replace")
    except LookupError:
        return text.encode("utf-8")


# ---------------------------------------------------------------------------------
# Escaping and field access
# ---------------------------------------------------------------------------------


def escape(text: str) -> str:
    """HL7 escaping of text we put in a field (standard delimiters |^~\\&). Line breaks
    become spaces: they would split segments."""
    if not text:
        return ""
    text = str(text)
    if "\\" in text:
        text = text.replace("\\", "\\E\\")
    for char, seq in (("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\")):
        if char in text:
            text = text.replace(char, seq)
    if "\r" in text or "\n" in text:
        text = " ".join(text.splitlines())
    return text


_STANDARD = "|^~\\&"


class _Seps:
    """The delimiters of one message: field, component, repetition, escape, subcomponent."""

    __slots__ = ("cs", "esc", "fs", "rs", "ss", "standard", "to_standard")

    def __init__(self, fs: str, enc: str):
        self.fs = fs
        self.cs, self.rs, self.esc, self.ss = enc[0], enc[1], enc[2], enc[3]
        self.standard = fs + enc == _STANDARD
        self.to_standard = None if self.standard else str.maketrans(fs + enc, _STANDARD)

    def unescape(self, text: str) -> str:
        esc = self.esc
        if esc not in text:
            return text
        out: list[str] = []
        i = 0
        while True:
            j = text.find(esc, i)
            if j < 0:
                out.append(text[i:])
                break
            k = text.find(esc, j + 1)
            if k < 0:  # unterminated: keep the rest as sent
                out.append(text[i:])
                break
            out.append(text[i:j])
            out.append(self._sequence(text[j + 1 : k], text[j : k + 1]))
            i = k + 1
        return "".join(out)

    def _sequence(self, code: str, original: str) -> str:
        simple = {"F": self.fs, "S": self.cs, "T": self.ss, "R": self.rs, "E": self.esc}
        if code in simple:
            return simple[code]
        if code in ("H", "N"):  # highlighting on/off: no meaning in plain text
            return ""
        if code.startswith((".br", ".sp")):
            return "\n"
        if code.startswith("X") and len(code) > 1:
            try:
                raw = bytes.fromhex(code[1:])
            except ValueError:
                return original
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                return raw.decode("latin-1")
        if code.startswith((".", "Z", "C", "M")):  # formatting, local, charset switches
            return ""
        return original

    def standardise(self, text: str) -> str:
        """A field as sent, with this message's delimiters replaced by the standard ones."""
        return text if self.to_standard is None else text.translate(self.to_standard)

    def component(self, field: str, comp: int = 1, sub: int = 1, rep: int = 1) -> str:
        """One component (and subcomponent) of one repetition, unescaped and trimmed."""
        if not field:
            return ""
        if rep > 1 or self.rs in field:
            reps = field.split(self.rs)
            field = reps[rep - 1] if rep <= len(reps) else ""
        if comp > 1 or self.cs in field:
            comps = field.split(self.cs)
            field = comps[comp - 1] if comp <= len(comps) else ""
        if sub > 1 or self.ss in field:
            subs = field.split(self.ss)
            field = subs[sub - 1] if sub <= len(subs) else ""
        return self.unescape(field).strip()

    def repetitions(self, field: str) -> list[str]:
        return field.split(self.rs) if field else []

    def text(self, field: str) -> str:
        """A whole field as sent. A plain value (no delimiter inside) is unescaped: "\\T\\"
        is how an ampersand is sent. A structured one (components, repetitions) keeps its
        escapes, with its delimiters written the standard way (^ ~ &), so that splitting
        it again stays unambiguous."""
        if not field:
            return ""
        for sep in (self.cs, self.rs, self.ss):
            if sep in field:
                return self.standardise(field)
        return self.unescape(field)


def _field(segment: Sequence[str] | None, number: int) -> str:
    if segment is None or number >= len(segment):
        return ""
    return segment[number]


def _is_null(value: str) -> bool:
    return not value or value == '""'  # HL7 explicit null


# ---------------------------------------------------------------------------------
# Timestamps
# ---------------------------------------------------------------------------------

_TS = re.compile(
    r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:[.,](\d{1,6}))?\s*(?:([+-])(\d{2})(\d{2}))?$"
)


@functools.lru_cache(maxsize=16)
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return timezone(timedelta(hours=7), "ICT")


def _tz(dialect: Dialect) -> tzinfo:
    return _zone(str(dialect.get("timezone") or DEFAULT_TIMEZONE))


@functools.lru_cache(maxsize=256)  # a message repeats its times (every OBX-14); immutable
def parse_ts(value: str, default_tz: tzinfo | None = None) -> datetime | None:
    """HL7 TS/DTM: YYYY[MM[DD[HH[MM[SS[.S…]]]]]][+/-ZZZZ], then "^precision" in 2.3.1.
    Missing parts default to their minimum; without an offset the analyzer's local zone
    applies (analyzers keep local time). Unparseable → None, never an error: a bad
    timestamp is no reason to lose a result."""
    value = value.split("^", 1)[0].strip()
    if not value:
        return None
    match = _TS.match(value)
    if match is None:
        match = _TS.match(re.sub(r"[-:T ]", "", value))
        if match is None:
            return None
    year, month, day, hour, minute, second, fraction, sign, tzh, tzm = match.groups()
    if sign:
        offset = timedelta(hours=int(tzh), minutes=int(tzm))
        zone: tzinfo = timezone(-offset if sign == "-" else offset)
    else:
        zone = default_tz or _zone(DEFAULT_TIMEZONE)
    try:
        return datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")[:6]),
            tzinfo=zone,
        )
    except (ValueError, OverflowError):
        return None


def _format_ts(moment: datetime | date | None, *, offset: bool = False) -> str:
    if moment is None:
        return ""
    if not isinstance(moment, datetime):
        return moment.strftime("%Y%m%d")
    text = moment.strftime("%Y%m%d%H%M%S")
    if offset and moment.tzinfo is not None:
        text += moment.strftime("%z")
    return text


def _format_date(moment: datetime | date | None, *, with_time: bool = False) -> str:
    if moment is None:
        return ""
    text = moment.strftime("%Y%m%d")
    return text + "000000" if with_time else text


def _now(now: datetime | None, dialect: Dialect) -> datetime:
    return now if now is not None else datetime.now(_tz(dialect))


_control_ids = itertools.count(1)


def _new_control_id(now: datetime) -> str:
    """Unique enough for the receiver (MSH-10 only has to differ between messages):
    the second and a process-wide counter, digits only (some analyzers want a number),
    18 characters (2.3.1 allows 20)."""
    return f"{now:%Y%m%d%H%M%S}{next(_control_ids) % 10000:04d}"


# ---------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------

# Result messages: ORU^R01 (every vendor, 2.3.1+), OUL^R22 (IHE LAW, specimen-oriented),
# and the other unsolicited-result events that carry the same OBR/SPM + OBX groups.
RESULT_TYPES = frozenset(
    {
        "ORU^R01",
        "ORU^R30",
        "ORU^R31",
        "ORU^R32",
        "OUL^R21",
        "OUL^R22",
        "OUL^R23",
        "OUL^R24",
    }
)
# QBP^Q11 is the IHE LAW query; Roche cobas instruments send the same as QBP^WOS.
_QBP_EVENTS = ("Q11", "WOS")

_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}$")
# IHE LAW SPM-11 specimen role (HL7 table 0369): Q control, C calibrator, E electronic
# QC, V verifying calibrator. None of these is a patient result.
_QC_ROLES = frozenset({"Q", "C", "E", "V"})
_WORDS = re.compile(r"[A-Za-z0-9]+")


def _check_delimiters(data: bytes) -> _Seps:
    """MSH-1 and MSH-2: five distinct printable, non-alphanumeric characters."""
    if len(data) < 9 or data[8:9] != data[3:4]:
        raise MessageError("wrong delimiters: MSH-2 must be 4 encoding characters", "AR")
    chars = data[3:8]
    if len(set(chars)) != 5 or any(c <= 0x20 or c >= 0x7F or chr(c).isalnum() for c in chars):
        raise MessageError(
            "wrong delimiters: field separator and encoding characters must be 5 distinct "
            "printable symbols (usually |^~\\&)",
            "AR",
        )
    text = chars.decode("ascii")
    return _Seps(text[0], text[1:])


def _split_segments(text: str, seps: _Seps) -> list[list[str]]:
    """Segments as lists of fields numbered like HL7 (fields[n] is SEG-n; for MSH,
    fields[1] is the field separator and fields[2] the encoding characters)."""
    fs = seps.fs
    segments: list[list[str]] = []
    for line in text.split("\r"):
        if not line or line.isspace():
            continue
        if line[0] in " \t\n":
            line = line.lstrip()
        parts = line.split(fs)
        if parts[0] == "MSH":
            parts.insert(1, fs)
        segments.append(parts)
    return segments


class _Context:
    """The segments an OBX belongs to: the last PID, PV1, SPM, SAC, ORC and OBR."""

    __slots__ = ("OBR", "OBX", "ORC", "PID", "PV1", "SAC", "SPM")

    def __init__(self) -> None:
        self.PID = self.PV1 = self.SPM = self.SAC = self.ORC = self.OBR = None
        self.OBX: list[str] | None = None


@functools.lru_cache(maxsize=64)
def _specimen_plan(fields: tuple[str, ...]) -> tuple[tuple[str, str, int, int | None], ...]:
    plan = []
    for spec in fields:
        match = re.fullmatch(r"\s*([A-Z][A-Z0-9]{2})-(\d+)(?:\.(\d+))?\s*", str(spec).upper())
        if match and match.group(1) in _Context.__slots__:
            comp = int(match.group(3)) if match.group(3) else None
            plan.append((str(spec).strip(), match.group(1), int(match.group(2)), comp))
    return tuple(plan)


def _specimen_id(
    ctx: _Context, plan: Iterable[tuple[str, str, int, int | None]], seps: _Seps
) -> tuple[str, str]:
    """The first non-empty specimen id along the plan, and where it was found."""
    for label, segment_id, number, comp in plan:
        field = _field(getattr(ctx, segment_id), number)
        if not field:
            continue
        if segment_id == "SPM" and number == 2 and comp is None:
            # SPM-2 is EIP: placer-assigned id ^ filler-assigned id, each an EI whose
            # first subcomponent is the id.
            value = seps.component(field, 1)
            if _is_null(value):
                value = seps.component(field, 2)
        else:
            value = seps.component(field, comp or 1)
        if not _is_null(value):
            return value, label
    return "", ""


def _matches_prefix(value: str, prefixes: Sequence[str]) -> bool:
    value = value.upper()
    return any(value.startswith(p) for p in prefixes if p)


def _obr4_is_qc(obr: list[str] | None, seps: _Seps, prefixes: Sequence[str]) -> bool:
    """OBR-4 naming a control run: a word of its code or text starts with a QC prefix
    (Mindray BC-series name QC runs in OBR-4, e.g. "L-J QC")."""
    field = _field(obr, 4)
    if not field or not prefixes:
        return False
    words = _WORDS.findall(seps.component(field, 1) + " " + seps.component(field, 2))
    return any(_matches_prefix(word, prefixes) for word in words)


def _spm_is_qc(spm: list[str] | None, seps: _Seps) -> bool:
    field = _field(spm, 11)
    return any(seps.component(r, 1).upper() in _QC_ROLES for r in seps.repetitions(field))


def _sn_text(field: str, seps: _Seps) -> str:
    """SN (structured numeric) as one would write it: "<^0.5" → "<0.5", "^1^:^128" →
    "1:128", "^10^-^20" → "10-20"."""
    comparator, num1, separator, num2 = (seps.component(field, i) for i in (1, 2, 3, 4))
    return f"{comparator}{num1}{separator}{num2}"


def parse(raw: bytes | str, dialect: Dialect | None = None) -> Message:
    """Read one HL7 message (an MLLP frame's payload). Every failure is a MessageError
    whose code (AE/AR) and reason go into the ACK: this never raises anything else."""
    try:
        return _parse(raw, dialect or {})
    except MessageError:
        raise
    except Exception as exc:  # the message's fault, whatever it is: answer it, don't crash
        raise MessageError(f"unreadable message: {type(exc).__name__}: {exc}"[:300], "AE") from exc


def _parse(raw: bytes | str, dialect: Dialect) -> Message:
    if isinstance(raw, str):
        text = raw.lstrip("\ufeff \t\r\n\x00")
        if not text.startswith("MSH"):
            raise MessageError("no MSH segment", "AR")
        seps = _check_delimiters(text[:9].encode("latin-1", errors="replace"))
        codec = "utf-8"
    else:
        data = _strip_lead(bytes(raw))
        if not data.startswith(b"MSH"):
            raise MessageError("no MSH segment", "AR")
        seps = _check_delimiters(data)
        text, codec = _decode(data, dialect)

    if "\n" in text:
        text = text.replace("\r\n", "\r").replace("\n\r", "\r")
        # A LF before something shaped like a segment ("\nPID|") is a segment break; a
        # LF elsewhere is (badly escaped) text inside a field and is left alone.
        if "\n" in text and re.search(r"\n\s*[A-Z][A-Z0-9]{2}" + re.escape(seps.fs), text):
            raise MessageError("segments are separated by LF, not CR", "AE")

    segments = _split_segments(text, seps)
    msh = segments[0]
    extra_msh = [i for i, s in enumerate(segments) if i and s[0] == "MSH"]
    if extra_msh:
        raise MessageError(
            f"more than one message in one frame (another MSH is segment {extra_msh[0] + 1})",
            "AE",
        )

    type_field = _field(msh, 9)
    msg_type = seps.component(type_field, 1).upper()
    event = seps.component(type_field, 2).upper()
    structure = seps.component(type_field, 3).upper()
    if not msg_type:
        raise MessageError("MSH-9 message type is missing", "AE")
    name = f"{msg_type}^{event}" if event else msg_type
    if msg_type == "ACK":
        kind = "ack"
    elif name in RESULT_TYPES:
        kind = "results"
    elif msg_type == "QRY" and event == "Q02":
        kind = "mindray-query"
    elif msg_type == "QBP" and event in _QBP_EVENTS:
        kind = "ihe-query"
        name = "QBP^Q11"
    else:
        raise MessageError(f"unsupported message type {name}", "AE")

    tz = _tz(dialect)
    app_ack = seps.component(_field(msh, 16), 1)
    message = Message(
        protocol="hl7",
        message_type="ACK" if kind == "ack" else name,
        control_id=seps.unescape(_field(msh, 10)).strip(),
        version=seps.component(_field(msh, 12), 1),
        sending_application=seps.component(_field(msh, 3), 1),
        sending_facility=seps.component(_field(msh, 4), 1),
        charset=seps.standardise(_field(msh, 18)).strip(),
        sent_at=parse_ts(seps.component(_field(msh, 7), 1), tz),
    )
    extra = message.extra
    extra["kind"] = "results" if kind == "results" else "query" if "query" in kind else "ack"
    extra["event"] = event
    if structure:
        extra["structure"] = structure
    extra["codec"] = codec
    extra["receiving_application"] = seps.component(_field(msh, 5), 1)
    extra["receiving_facility"] = seps.component(_field(msh, 6), 1)
    extra["processing_id"] = seps.component(_field(msh, 11), 1)
    extra["accept_ack_type"] = seps.component(_field(msh, 15), 1)
    extra["app_ack_type"] = app_ack
    # MSH-3..6 as sent (standard delimiters), echoed swapped in our answers.
    # String keys: extra may be stored as JSON.
    extra["msh_hd"] = {str(n): seps.standardise(_field(msh, n)) for n in (3, 4, 5, 6)}
    profile = seps.component(_field(msh, 21), 1)
    if profile:
        extra["profile"] = profile

    # Mindray BS-series chemistry (host interface manual, ORU^R01) reuse MSH-16 for the
    # kind of result: "0" patient sample, "1" calibration, "2" quality control. The
    # standard values of MSH-16 are AL/NE/ER/SU, so these digits mean nothing else.
    run_kind = {"1": "calibration", "2": "qc"}.get(app_ack, "")
    if run_kind:
        extra["run_kind"] = run_kind
        message.qc = True

    for pid in (s for s in segments if s[0] == "PID"):
        ids = [seps.component(_field(pid, 2), 1)]
        ids += [seps.component(r, 1) for r in seps.repetitions(_field(pid, 3))]
        for value in ids:
            if not _is_null(value) and value not in message.patient_ids:
                message.patient_ids.append(value)
        if "patient_name" not in extra:
            name_parts = [seps.component(_field(pid, 5), i) for i in (1, 2, 3)]
            extra["patient_name"] = " ".join(p for p in name_parts if p)
            extra["birth_date"] = seps.component(_field(pid, 7), 1)
            extra["sex"] = seps.component(_field(pid, 8), 1)

    if kind == "results":
        _read_results(message, segments, seps, dialect, tz)
        if not message.observations and not any(s[0] in ("OBR", "SPM") for s in segments):
            raise MessageError(f"{name} without OBR, SPM or OBX segment", "AE")
    elif kind == "mindray-query":
        _read_mindray_query(message, segments, seps)
    elif kind == "ihe-query":
        _read_ihe_query(message, segments, seps)
    else:
        msa = next((s for s in segments if s[0] == "MSA"), None)
        extra["ack_code"] = seps.component(_field(msa, 1), 1).upper()
        extra["acked_control_id"] = seps.unescape(_field(msa, 2)).strip()
        err = next((s for s in segments if s[0] == "ERR"), None)
        extra["ack_text"] = seps.unescape(_field(msa, 3)) or seps.unescape(_field(err, 7))
    return message


def _read_results(
    message: Message, segments: list[list[str]], seps: _Seps, dialect: Dialect, tz: tzinfo
) -> None:
    plan = _specimen_plan(tuple(dialect.get("specimen_fields") or DEFAULT_SPECIMEN_FIELDS))
    configured = dialect.get("qc_specimen_prefixes")
    if configured is None:
        configured = DEFAULT_QC_PREFIXES
    elif isinstance(configured, str):  # "QC" meant ["QC"], not ["Q", "C"]
        configured = [configured]
    prefixes = tuple(str(p).strip().upper() for p in configured if str(p).strip())
    ctx = _Context()
    last: Observation | None = None
    group_qc: bool | None = None  # QC verdict of the current SPM/OBR group, cached
    running = 0
    for seg in segments[1:]:
        sid = seg[0]
        if sid == "OBX":
            running += 1
            ctx.OBX = seg
            last = _observation(seg, running, ctx, plan, seps, tz)
            if group_qc is None:
                group_qc = _spm_is_qc(ctx.SPM, seps) or _obr4_is_qc(ctx.OBR, seps, prefixes)
            last.qc = (
                message.qc
                or group_qc
                or bool(last.specimen_id and _matches_prefix(last.specimen_id, prefixes))
            )
            message.observations.append(last)
            continue
        if sid == "NTE":
            if last is not None:  # a comment on the result above it
                last.extra.setdefault("comments", []).append(seps.text(_field(seg, 3)))
            continue
        last = None
        if sid == "PID":
            ctx.PID, ctx.PV1, ctx.SPM, ctx.SAC, ctx.ORC, ctx.OBR = seg, None, None, None, None, None
            group_qc = None
        elif sid == "SPM":  # a new specimen: its own OBRs follow
            ctx.SPM, ctx.SAC, ctx.ORC, ctx.OBR = seg, None, None, None
            group_qc = None
        elif sid == "OBR":
            ctx.OBR = seg
            group_qc = None
        elif sid in ("ORC", "SAC", "PV1"):
            setattr(ctx, sid, seg)
        elif not _SEGMENT_ID.match(sid):
            message.extra.setdefault("skipped_segments", []).append(sid[:20])
    if message.observations and all(o.qc for o in message.observations):
        message.qc = True


def _observation(
    seg: list[str],
    running: int,
    ctx: _Context,
    plan: Iterable[tuple[str, str, int, int | None]],
    seps: _Seps,
    tz: tzinfo,
) -> Observation:
    identifier = _field(seg, 3)
    code = seps.component(identifier, 1) or seps.component(identifier, 2)
    name = seps.component(identifier, 2)
    sub_id = seps.unescape(_field(seg, 4)).strip()
    if not name and any(c.isalpha() for c in sub_id):
        name = sub_id  # Mindray BS-series: test number in OBX-3, test name in OBX-4
    unit_field = _field(seg, 6)
    set_id = _field(seg, 1).strip()
    value_field = _field(seg, 5)
    value_type = seps.component(_field(seg, 2), 1).upper()
    specimen_id, found_in = _specimen_id(ctx, plan, seps)
    obs = Observation(
        specimen_id=specimen_id,
        test_code=code,
        test_name=name,
        value=seps.text(value_field),
        unit=seps.component(unit_field, 1) or seps.component(unit_field, 2),
        reference_range=seps.text(_field(seg, 7)).strip(),
        flags="~".join(seps.component(r, 1) for r in seps.repetitions(_field(seg, 8))),
        status=seps.component(_field(seg, 11), 1).upper(),
        value_type=value_type,
        observed_at=parse_ts(seps.component(_field(seg, 14), 1), tz)
        or parse_ts(seps.component(_field(seg, 19), 1), tz),
        sequence=int(set_id) if set_id.isdigit() else running,
    )
    extra = obs.extra
    if found_in:
        extra["specimen_field"] = found_in
    coding = seps.component(identifier, 3)
    if coding:
        extra["coding_system"] = coding
    if sub_id:
        extra["sub_id"] = sub_id
    if value_type == "SN":
        extra["text"] = _sn_text(value_field, seps)
    equipment = [seps.component(r, 1) for r in seps.repetitions(_field(seg, 18))]
    if any(equipment):
        extra["equipment"] = [e for e in equipment if e]
    return obs


def _read_mindray_query(message: Message, segments: list[list[str]], seps: _Seps) -> None:
    """Mindray BS-series QRY^Q02: QRD-8 (who subject filter) carries the sample barcode,
    QRD-4 the query id; QRD and QRF are echoed in the DSR^Q03 answer."""
    qrd = next((s for s in segments if s[0] == "QRD"), None)
    if qrd is None:
        raise MessageError("QRY^Q02 without QRD segment", "AE")
    qrf = next((s for s in segments if s[0] == "QRF"), None)
    barcodes = []
    for rep in seps.repetitions(_field(qrd, 8)):
        value = seps.component(rep, 1)
        if not _is_null(value) and value not in barcodes:
            barcodes.append(value)
    extra: dict[str, Any] = {
        "style": "mindray",
        "query_time": seps.component(_field(qrd, 1), 1),
        "what_filter": seps.component(_field(qrd, 9), 1),  # "OTH"; "CAN" cancels
        "qrd": seps.standardise(seps.fs.join(qrd)),
    }
    if qrf is not None:
        extra["qrf"] = seps.standardise(seps.fs.join(qrf))
    message.queries.append(
        Query(specimen_ids=barcodes, query_id=seps.unescape(_field(qrd, 4)).strip(), extra=extra)
    )


def _read_ihe_query(message: Message, segments: list[list[str]], seps: _Seps) -> None:
    """IHE LAW LAB-27 QBP^Q11: QPD-1 "WOS^Work Order Step^IHE_LABTF", QPD-2 the query tag,
    QPD-3 the specimen (container) id."""
    qpd = next((s for s in segments if s[0] == "QPD"), None)
    if qpd is None:
        raise MessageError("QBP^Q11 without QPD segment", "AE")
    specimen = seps.component(_field(qpd, 3), 1)
    if _is_null(specimen):
        specimen = seps.component(_field(qpd, 3), 2)
    extra = {
        "style": "ihe",
        "query_name": seps.standardise(_field(qpd, 1)),
        "qpd": seps.standardise(seps.fs.join(qpd)),
    }
    message.queries.append(
        Query(
            specimen_ids=[] if _is_null(specimen) else [specimen],
            query_id=seps.unescape(_field(qpd, 2)).strip(),
            extra=extra,
        )
    )


# ---------------------------------------------------------------------------------
# Acknowledgements
# ---------------------------------------------------------------------------------

# HL7 table 0357 (message error condition codes), chosen from the reason's words. The
# first match wins.
_ERROR_CODES = (
    ("unsupported message type", "200", "Unsupported message type"),
    ("unsupported event", "201", "Unsupported event code"),
    ("processing id", "202", "Unsupported processing id"),
    ("version", "203", "Unsupported version id"),
    ("unknown specimen", "204", "Unknown key identifier"),
    ("not found", "204", "Unknown key identifier"),
    ("duplicate", "205", "Duplicate key identifier"),
    ("no msh", "100", "Segment sequence error"),
    ("separated by", "100", "Segment sequence error"),
    ("more than one message", "100", "Segment sequence error"),
    ("without", "100", "Segment sequence error"),
    ("missing", "101", "Required field missing"),
    ("delimiter", "102", "Data type error"),
    ("charset", "102", "Data type error"),
    ("msh-18", "102", "Data type error"),
    ("bytes are not", "102", "Data type error"),
    ("too large", "207", "Application internal error"),
)
_ERROR_TEXTS = {code: text for _, code, text in _ERROR_CODES} | {
    "207": "Application internal error"
}


def hl7_error_code(reason: str) -> str:
    """The HL7 table 0357 code for an error reason (207 when nothing more precise fits)."""
    lowered = reason.lower()
    for words, code, _text in _ERROR_CODES:
        if words in lowered:
            return code
    return "207"


class _Header:
    """What an answer needs from the message it answers."""

    __slots__ = (
        "app_ack",
        "charset",
        "codec",
        "control_id",
        "event",
        "hd",
        "message_type",
        "processing_id",
        "version",
    )

    def __init__(self) -> None:
        self.hd: dict[int, str] = {3: "", 4: "", 5: "", 6: ""}  # escaped, standard seps
        self.message_type = ""
        self.event = ""
        self.control_id = ""
        self.processing_id = ""
        self.version = ""
        self.charset = ""
        self.codec = ""
        self.app_ack = ""

    @classmethod
    def of_message(cls, message: Message) -> _Header:
        header = cls()
        extra = message.extra
        header.hd = {int(k): v for k, v in (extra.get("msh_hd") or {}).items()}
        for number, value in ((3, message.sending_application), (4, message.sending_facility)):
            if not header.hd.get(number):
                header.hd[number] = escape(value)
        for number, key in ((5, "receiving_application"), (6, "receiving_facility")):
            if not header.hd.get(number):
                header.hd[number] = escape(extra.get(key, ""))
        header.message_type = message.message_type.split("^")[0]
        header.event = extra.get("event") or message.message_type.partition("^")[2]
        header.control_id = message.control_id
        header.processing_id = extra.get("processing_id", "")
        header.version = message.version
        header.charset = message.charset
        header.codec = extra.get("codec", "")
        header.app_ack = extra.get("app_ack_type", "")
        return header

    @classmethod
    def salvage(cls, raw: bytes | str | None) -> _Header:
        """Whatever an MSH-like first line still tells, for a message parse() refused."""
        header = cls()
        if raw is None:
            return header
        if isinstance(raw, str):
            raw = raw.encode("utf-8", errors="replace")
        line = _msh_line(_strip_lead(bytes(raw)))
        if not line.startswith(b"MSH") or len(line) < 5:
            return header
        text = line.decode("latin-1")
        fs = text[3]
        split = text.split(fs)
        if len(split) > 2 and split[1] == "":  # "MSH||^~\\&|…": a doubled separator
            del split[1]
        parts = ["", *split]  # parts[n] is MSH-n (parts[2] the encoding characters)
        comp_sep = text[4] if text[4] != fs else "^"

        def get(n: int) -> str:
            value = parts[n] if n < len(parts) else ""
            return value.split(comp_sep)[0].strip() if comp_sep else value.strip()

        for number in (3, 4, 5, 6):
            header.hd[number] = escape(get(number))
        type_parts = (parts[9] if len(parts) > 9 else "").split(comp_sep)
        header.message_type = type_parts[0].strip().upper()
        header.event = type_parts[1].strip().upper() if len(type_parts) > 1 else ""
        header.control_id = (parts[10] if len(parts) > 10 else "").strip()
        header.processing_id = get(11)
        header.version = get(12)
        header.app_ack = get(16)
        label = get(18)
        header.charset = label
        header.codec = _codec_for(label) or ""
        return header


def _msh(fields: dict[int, str]) -> str:
    """An MSH segment from {field number: escaped text}, trailing empty fields kept off."""
    last = max(n for n, v in fields.items() if v) if any(fields.values()) else 9
    return "MSH|^~\\&|" + "|".join(fields.get(n, "") for n in range(3, last + 1))


def _out_codec(header: _Header, dialect: Dialect) -> str:
    return _forced_codec(dialect) or _codec_for(header.charset) or header.codec or "utf-8"


def _our_app(dialect: Dialect) -> tuple[str, str]:
    return (
        escape(str(dialect.get("our_application") or OUR_APPLICATION)),
        escape(str(dialect.get("our_facility") or "")),
    )


def _clean_reason(reason: str, limit: int) -> str:
    return escape(" ".join(str(reason).split()))[:limit]


def build_ack(
    raw_or_message: bytes | str | Message | None,
    code: str = "AA",
    reason: str = "",
    dialect: Dialect | None = None,
    *,
    control_id: str | None = None,
    now: datetime | None = None,
    error_code: str | None = None,
) -> bytes:
    """The ACK (HL7 text, not framed) for a message: AA accepted, AE application error,
    AR rejected. Works on a Message from parse(), or on the raw bytes of a message that
    could not be parsed (then MSH is salvaged from an MSH-like first line; MSA-2 is
    empty when no control id can be found). `control_id` overrides the echoed MSH-10;
    `error_code` the HL7 table 0357 code guessed from the reason.

    Two layouts, chosen by dialect["ack_style"]:

    "ihe" (default): IHE PaLM TF LAW / HL7 2.5.1 acknowledgement. Sender and receiver
        swapped, MSH-9 ACK^<event>^ACK, processing id, version and charset echoed,
        MSA|code|control id, and for errors an ERR segment with the HL7 error code in
        ERR-3, severity E in ERR-4 and the reason in ERR-7. MSA-3 (text) only for 2.3/2.4
        senders, where ERR-3..7 do not exist yet.
    "mindray": the Mindray BS/BC-series host interface manuals (HL7 2.3.1) expect
        empty MSH-3..6, MSH-9 ACK^<event>, MSH-16 0 (their result-type digit), the text
        in MSA-3 ("Message accepted" or the reason) and the error condition (0 or a
        table 0357 code) in MSA-6, and no ERR segment. Their analyzers were written
        against 2.3.1 where MSA-3/MSA-6 carry the outcome; IHE LAW follows 2.5, which
        moved both into ERR.
    """
    dialect = dialect or {}
    code = (code or "AA").upper()
    if isinstance(raw_or_message, Message):
        header = _Header.of_message(raw_or_message)
    else:
        header = _Header.salvage(raw_or_message)
    if control_id is not None:
        header.control_id = control_id
    moment = _now(now, dialect)
    ctl = escape(header.control_id)[:199]
    err = "0" if code == "AA" else (error_code or hl7_error_code(reason))
    codec = _out_codec(header, dialect)

    if str(dialect.get("ack_style") or "ihe").lower() == "mindray":
        event = header.event or "R01"
        msh = _msh(
            {
                7: _format_ts(moment),
                9: f"ACK^{escape(event)}",
                10: _new_control_id(moment),
                11: escape(header.processing_id) or "P",
                12: escape(header.version) or "2.3.1",
                16: header.app_ack if header.app_ack in ("0", "1", "2") else "0",
                18: escape(header.charset) or "ASCII",
            }
        )
        text = "Message accepted" if code == "AA" else _clean_reason(reason, 80)
        if not text:
            text = "Message rejected" if code == "AR" else "Application error"
        lines = [msh + "|||", f"MSA|{code}|{ctl}|{text}|||{err}|"]
        return _encode("\r".join(lines) + "\r", codec)

    app, facility = _our_app(dialect)
    event = escape(header.event)
    version = escape(header.version) or "2.5.1"
    msh = _msh(
        {
            3: header.hd.get(5) or app,
            4: header.hd.get(6) or facility,
            5: header.hd.get(3, ""),
            6: header.hd.get(4, ""),
            7: _format_ts(moment, offset=True),
            9: f"ACK^{event}^ACK" if event else "ACK",
            10: _new_control_id(moment),
            11: escape(header.processing_id) or "P",
            12: version,
            18: escape(header.charset),
        }
    )
    old_version = version.startswith(("2.1", "2.2", "2.3", "2.4"))
    msa = f"MSA|{code}|{ctl}"
    lines = [msh]
    if code == "AA":
        lines.append(msa)
    else:
        reason_text = _clean_reason(reason, 2000) or _ERROR_TEXTS.get(err, "")
        lines.append(f"{msa}|{reason_text[:80]}" if old_version else msa)
        label = _ERROR_TEXTS.get(err, "Application internal error")
        lines.append(f"ERR|||{err}^{label}^HL70357|E|||{reason_text}")
    return _encode("\r".join(lines) + "\r", codec)


# ---------------------------------------------------------------------------------
# Host query answers
# ---------------------------------------------------------------------------------

# What Mindray analyzers call the specimen types (DSP-26); our catalogue's words map to
# them. Adjust per analyzer with dialect["sample_types"].
MINDRAY_SAMPLE_TYPES = {
    "serum": "serum",
    "huyết thanh": "serum",
    "plasma": "plasma",
    "huyết tương": "plasma",
    "urine": "urine",
    "nước tiểu": "urine",
    "csf": "CSF",
    "dịch não tủy": "CSF",
    "whole blood": "whole blood",
    "máu toàn phần": "whole blood",
}

# HL7 table 0487 specimen types for SPM-4 (IHE LAW).
HL7_SPECIMEN_TYPES = {
    "serum": ("SER", "Serum"),
    "huyết thanh": ("SER", "Serum"),
    "plasma": ("PLAS", "Plasma"),
    "huyết tương": ("PLAS", "Plasma"),
    "whole blood": ("BLD", "Whole blood"),
    "máu toàn phần": ("BLD", "Whole blood"),
    "blood": ("BLD", "Whole blood"),
    "urine": ("UR", "Urine"),
    "nước tiểu": ("UR", "Urine"),
    "csf": ("CSF", "Cerebral spinal fluid"),
    "dịch não tủy": ("CSF", "Cerebral spinal fluid"),
}

# DSR^Q03 DSP segments of the Mindray BS-series chemistry host interface manual: DSP-1
# to DSP-28 carry patient and sample fields in this fixed order, then one DSP per test
# from DSP-29 on ("test no^test name^unit^normal range"; we send "code^^^"). A key is the
# name of a value computed by _mindray_dsp_values(); None is a field we leave empty.
# Fields 7–14, 16 and 18–20 are further patient details (race, address, postcode,
# phone, insurance, …) that we do not send.
MINDRAY_DSP_FIELDS: tuple[tuple[int, str | None], ...] = (
    (1, "admission_number"),  # our patient id
    (2, "bed_number"),
    (3, "patient_name"),
    (4, "birth_date"),  # YYYYMMDDHHMMSS
    (5, "sex"),  # M / F / O
    (6, "blood_type"),
    (7, None),
    (8, None),
    (9, None),
    (10, None),
    (11, None),
    (12, None),
    (13, None),
    (14, None),
    (15, "patient_type"),  # outpatient / inpatient
    (16, None),
    (17, "charge_type"),
    (18, None),
    (19, None),
    (20, None),
    (21, "barcode"),  # the specimen id the analyzer asked about
    (22, "sample_id"),  # the analyzer's sample number: left to the analyzer
    (23, "sample_time"),  # collection (else send) time, YYYYMMDDHHMMSS
    (24, "stat"),  # Y / N
    (25, "collection_volume"),
    (26, "sample_type"),  # serum, plasma, urine, CSF…
    (27, "fetch_doctor"),
    (28, "fetch_department"),
)
MINDRAY_FIRST_TEST_DSP = 29


def _mindray_dsp_values(order: PendingOrder, moment: datetime, dialect: Dialect) -> dict[str, str]:
    sample_types = {**MINDRAY_SAMPLE_TYPES, **(dialect.get("sample_types") or {})}
    specimen_type = (order.specimen_type or "").strip()
    sex = (order.sex or "").upper()[:1]
    return {
        "admission_number": order.patient_id,
        "patient_name": " ".join(order.patient_name.replace("^", " ").split()),
        "birth_date": _format_date(order.birth_date, with_time=True),
        "sex": {"M": "M", "F": "F"}.get(sex, "O" if sex else ""),
        "barcode": order.specimen_id,
        "sample_time": _format_ts(order.collected_at or moment),
        "stat": "Y" if (order.priority or "").upper().startswith("S") else "N",
        "sample_type": sample_types.get(specimen_type.lower(), specimen_type or "serum"),
    }


def _split_name(full_name: str) -> tuple[str, str]:
    """Family and given names: "Nguyễn Thị Hằng" → ("Nguyễn", "Thị Hằng"), a Vietnamese
    name starts with the family name. "FAMILY^GIVEN" is taken as given."""
    if "^" in full_name:
        family, _, given = full_name.partition("^")
        return family.strip(), given.replace("^", " ").strip()
    words = full_name.split()
    if not words:
        return "", ""
    return words[0], " ".join(words[1:])


def answer_query(
    message: Message,
    orders: Sequence[PendingOrder],
    dialect: Dialect | None = None,
    *,
    now: datetime | None = None,
) -> list[bytes]:
    """The HL7 texts (not framed) that answer a host query, to send in order.

    QRY^Q02 (Mindray): QCK^Q02 (QAK|SR|OK or NF), then one DSR^Q03 per specimen found.
    QBP^Q11 (IHE LAW LAB-27): RSP^K11 (QAK OK or NF, QPD echoed), then one OML^O33
    (LAB-28) per specimen found. A PendingOrder counts as found when `found` is true and
    it has tests: a specimen with nothing to run is answered "not found".
    """
    dialect = dialect or {}
    header = _Header.of_message(message)
    moment = _now(now, dialect)
    codec = _out_codec(header, dialect)
    found = [o for o in orders if o.found and o.tests]
    query = message.queries[0] if message.queries else Query(specimen_ids=[])
    if message.message_type == "QRY^Q02":
        texts = _mindray_answer(header, query, found, moment, dialect)
    elif message.message_type == "QBP^Q11":
        texts = _ihe_answer(header, query, found, moment, dialect)
    else:
        raise ValueError(f"{message.message_type} is not a host query")
    return [_encode(t, codec) for t in texts]


def _mindray_msh(message_type: str, header: _Header, moment: datetime) -> str:
    return (
        _msh(
            {
                7: _format_ts(moment),
                9: message_type,
                10: _new_control_id(moment),
                11: "P",
                12: escape(header.version) or "2.3.1",
                16: "0",
                18: escape(header.charset) or "ASCII",
            }
        )
        + "|||"
    )


def _mindray_answer(
    header: _Header,
    query: Query,
    found: list[PendingOrder],
    moment: datetime,
    dialect: Dialect,
) -> list[str]:
    ctl = escape(header.control_id)
    msa = f"MSA|AA|{ctl}|Message accepted|||0|"
    status = "OK" if found else "NF"
    texts = [
        "\r".join([_mindray_msh("QCK^Q02", header, moment), msa, "ERR|0|", f"QAK|SR|{status}|"])
        + "\r"
    ]
    qrd = query.extra.get("qrd") or (
        f"QRD|{_format_ts(moment)}|R|D|{escape(query.query_id)}|||RD|"
        f"{escape(query.specimen_ids[0] if query.specimen_ids else '')}|OTH|||T|"
    )
    qrf = query.extra.get("qrf") or "QRF||||||RCT|COR|ALL||"
    for order in found:
        values = _mindray_dsp_values(order, moment, dialect)
        lines = [
            _mindray_msh("DSR^Q03", header, moment),
            msa,
            "ERR|0|",
            "QAK|SR|OK|",
            qrd,
            qrf,
        ]
        for number, key in MINDRAY_DSP_FIELDS:
            lines.append(f"DSP|{number}||{escape(values.get(key, '')) if key else ''}|||")
        for offset, test in enumerate(order.tests):
            lines.append(f"DSP|{MINDRAY_FIRST_TEST_DSP + offset}||{escape(test.code)}^^^|||")
        lines.append("DSC||")
        texts.append("\r".join(lines) + "\r")
    return texts


def _ihe_msh(
    message_type: str, profile: str, header: _Header, moment: datetime, dialect: Dialect
) -> str:
    app, facility = _our_app(dialect)
    return _msh(
        {
            3: header.hd.get(5) or app,
            4: header.hd.get(6) or facility,
            5: header.hd.get(3, ""),
            6: header.hd.get(4, ""),
            7: _format_ts(moment, offset=True),
            9: message_type,
            10: _new_control_id(moment),
            11: escape(header.processing_id) or "P",
            12: "2.5.1",
            15: "NE",
            16: "AL",
            18: escape(header.charset),
            21: profile,
        }
    )


def _ihe_answer(
    header: _Header,
    query: Query,
    found: list[PendingOrder],
    moment: datetime,
    dialect: Dialect,
) -> list[str]:
    ctl = escape(header.control_id)
    query_name = query.extra.get("query_name") or "WOS^Work Order Step^IHE_LABTF"
    qpd = query.extra.get("qpd") or (
        f"QPD|{query_name}|{escape(query.query_id)}|"
        f"{escape(query.specimen_ids[0] if query.specimen_ids else '')}"
    )
    # Roche cobas ask with QBP^WOS and expect RSP^WOS back; everyone else QBP^Q11/RSP^K11.
    event = "WOS" if header.event == "WOS" else "K11"
    msh = _ihe_msh(f"RSP^{event}^RSP_K11", "LAB-27^IHE", header, moment, dialect)
    rsp = [
        msh,
        f"MSA|AA|{ctl}",
        f"QAK|{escape(query.query_id)}|{'OK' if found else 'NF'}|{query_name}",
        qpd,
    ]
    texts = ["\r".join(rsp) + "\r"]
    app, _facility = _our_app(dialect)
    for order in found:
        family, given = _split_name(order.patient_name)
        sid = escape(order.specimen_id)
        code, text = HL7_SPECIMEN_TYPES.get(
            (order.specimen_type or "").strip().lower(),
            ("", order.specimen_type or ""),
        )
        specimen_type = f"{code}^{escape(text)}^HL70487" if code else escape(text)
        priority = "S" if (order.priority or "").upper().startswith("S") else "R"
        pid_id = f"{escape(order.patient_id)}^^^{app}^MR" if order.patient_id else ""
        name = f"{escape(family)}^{escape(given)}" if family or given else ""
        sex = (order.sex or "").upper()[:1]
        lines = [
            _ihe_msh("OML^O33^OML_O33", "LAB-28^IHE", header, moment, dialect),
            f"PID|1||{pid_id}||{name}||{_format_date(order.birth_date)}|"
            f"{sex if sex in ('M', 'F', 'O', 'U', 'A', 'N') else 'U'}",
            f"SPM|1|{sid}||{specimen_type}|||||||P||||||"
            f"{_format_ts(order.collected_at, offset=True)}",
            f"SAC|||{sid}",
        ]
        for number, test in enumerate(order.tests, start=1):
            lines.append(f"ORC|NW|{sid}||||||||{_format_ts(moment, offset=True)}")
            lines.append(f"TQ1|1||||||||{priority}")
            lines.append(
                f"OBR|{number}|{sid}||{escape(test.code)}^{escape(test.name)}^L|{priority}"
            )
        # No trailing empty fields: an escaped value never ends in a raw "|".
        texts.append("\r".join(line.rstrip("|") for line in lines) + "\r")
    return texts


# ---------------------------------------------------------------------------------
# Result messages (simulator, tests)
# ---------------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)?$")


def build_oru(
    specimen_id: str,
    results: Iterable[Sequence[str]],
    *,
    version: str | None = None,
    style: str = "mindray",
    control_id: str | None = None,
    charset: str = "UNICODE UTF-8",
    qc: bool = False,
    patient_name: str = "",
    patient_id: str = "",
    now: datetime | None = None,
    analyzer: str = "",
) -> bytes:
    """A realistic result message for one specimen: results are tuples (code, name,
    value, unit, reference range, flags), shorter ones padded with "".

    style="mindray": ORU^R01 2.3.1 after the Mindray BS-series chemistry manual (barcode
    in OBR-2, test number in OBX-3, test name in OBX-4, MSH-16 "2" for QC).
    style="ihe": OUL^R22 2.5.1 after IHE LAW LAB-29 (PID, SPM with the specimen id and
    role P or Q, one OBR + OBX per test, OBX-18 equipment, OBX-19 analysis time).
    `version` defaults to 2.3.1 (mindray) or 2.5.1 (ihe).
    """
    moment = now or datetime.now(_zone(DEFAULT_TIMEZONE))
    ts = _format_ts(moment)
    ctl = escape(control_id or _new_control_id(moment))
    codec = _codec_for(charset) or "utf-8"
    rows = [(tuple(str(x) for x in r) + ("",) * 6)[:6] for r in results]
    sid = escape(specimen_id)

    if style == "mindray":
        device = escape(analyzer or "BS-240")
        lines = [
            f"MSH|^~\\&|Mindray|{device}|||{ts}||ORU^R01|{ctl}|P|{version or '2.3.1'}"
            f"||||{'2' if qc else '0'}||{escape(charset)}|||",
            f"PID|1||{escape(patient_id)}||{escape(patient_name)}|||||||||||||||||||||||||",
            f"OBR|1|{sid}|1|Mindray^{device}|N|{ts}|{ts}|||||||{ts}|serum|||||||||||||"
            "||||||||||||||||||||",
        ]
        for i, (code, name, value, unit, rng, flags) in enumerate(rows, start=1):
            vt = "NM" if _NUMBER.match(value) else "ST"
            lines.append(
                f"OBX|{i}|{vt}|{escape(code)}|{escape(name)}|{escape(value)}|{escape(unit)}|"
                f"{escape(rng)}|{escape(flags)}|||F|||{ts}||||"
            )
    elif style == "ihe":
        device = escape(analyzer or "ANALYZER")
        stamp = _format_ts(moment, offset=True)
        lines = [
            f"MSH|^~\\&|{device}|LAB|{OUR_APPLICATION}||{stamp}||OUL^R22^OUL_R22|{ctl}|P|"
            f"{version or '2.5.1'}|||NE|AL||{escape(charset)}|||LAB-29^IHE",
        ]
        if patient_name or patient_id:
            family, given = _split_name(patient_name)
            pid = f"{escape(patient_id)}^^^{OUR_APPLICATION}^MR" if patient_id else ""
            lines.append(f"PID|1||{pid}||{escape(family)}^{escape(given)}")
        lines.append(f"SPM|1|{sid}||SER^Serum^HL70487|||||||{'Q' if qc else 'P'}")
        for i, (code, name, value, unit, rng, flags) in enumerate(rows, start=1):
            vt = "NM" if _NUMBER.match(value) else "ST"
            lines.append(f"OBR|{i}|{sid}||{escape(code)}^{escape(name)}^L")
            ucum = f"{escape(unit)}^^UCUM" if unit else ""
            lines.append(
                f"OBX|1|{vt}|{escape(code)}^{escape(name)}^L||{escape(value)}|{ucum}|"
                f"{escape(rng)}|{escape(flags)}|||F|||{stamp}||||{device}|{stamp}"
            )
    else:
        raise ValueError(f"unknown style {style!r}: 'mindray' or 'ihe'")
    return _encode("\r".join(lines) + "\r", codec)


def build_query(
    specimen_id: str,
    *,
    style: str = "mindray",
    control_id: str | None = None,
    charset: str = "UNICODE UTF-8",
    now: datetime | None = None,
    analyzer: str = "",
) -> bytes:
    """An analyzer's host query for one specimen (simulator, tests).

    style="mindray": QRY^Q02 2.3.1 after the Mindray BS-series manual (barcode in
    QRD-8, query id in QRD-4). style="ihe": QBP^Q11 2.5.1 after IHE LAW LAB-27 (QPD-1
    WOS^Work Order Step^IHE_LABTF, QPD-2 the query tag, QPD-3 the specimen id).
    The answer is two messages when the specimen is known (QCK^Q02 + DSR^Q03, or
    RSP^K11 + OML^O33): a client must read both frames.
    """
    moment = now or datetime.now(_zone(DEFAULT_TIMEZONE))
    ts = _format_ts(moment)
    ctl = escape(control_id or _new_control_id(moment))
    sid = escape(specimen_id)
    if style == "mindray":
        device = escape(analyzer or "BS-240")
        lines = [
            f"MSH|^~\\&|Mindray|{device}|||{ts}||QRY^Q02|{ctl}|P|2.3.1||||||{escape(charset)}|||",
            f"QRD|{ts}|R|D|{ctl}|||RD|{sid}|OTH|||T|",
            f"QRF|{device}|{ts}|{ts}|||RCT|COR|ALL||",
        ]
    elif style == "ihe":
        device = escape(analyzer or "ANALYZER")
        stamp = _format_ts(moment, offset=True)
        lines = [
            f"MSH|^~\\&|{device}|LAB|{OUR_APPLICATION}||{stamp}||QBP^Q11^QBP_Q11|{ctl}|P|2.5.1"
            f"|||NE|AL||{escape(charset)}|||LAB-27^IHE",
            f"QPD|WOS^Work Order Step^IHE_LABTF|{ctl}|{sid}",
            "RCP|I||R",
        ]
    else:
        raise ValueError(f"unknown style {style!r}: 'mindray' or 'ihe'")
    return _encode("\r".join(lines) + "\r", _codec_for(charset) or "utf-8")
