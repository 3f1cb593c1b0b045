"""HL7 v2 codec (benhan.lab.hl7v2): MLLP framing, character sets, parsing of results and
queries, ACKs of both layouts, query answers, the simulator's messages, and one round
through a real socket with python-hl7's MLLP client. No database: plain functions."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import hl7
import pytest
from hl7.client import MLLPClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benhan.lab import hl7v2
from benhan.lab.hl7v2 import FrameTooLarge, MllpBuffer, build_ack, frame, parse
from benhan.lab.messages import Message, MessageError, PendingOrder, PendingTest

from . import hl7_samples as samples

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2024, 6, 11, 10, 40, 5, tzinfo=HCM)
VIETNAMESE = "Nguyễn Thị Hằng"


def msg(*segments: str, charset: str = "utf-8") -> bytes:
    return ("\r".join(segments) + "\r").encode(charset)


def oru(*segments: str, msh18: str = "UNICODE UTF-8", version: str = "2.3.1") -> bytes:
    head = f"MSH|^~\\&|Mindray|BS-240|||20240611093015||ORU^R01|99|P|{version}||||0||{msh18}|||"
    return msg(head, *segments)


def segments_of(text: bytes | str) -> dict[str, list]:
    """python-hl7's view of a message we wrote: {segment id: [segments]}."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    parsed = hl7.parse(text)
    out: dict[str, list] = {}
    for seg in parsed:
        out.setdefault(str(seg[0]), []).append(seg)
    return out


def field(seg, n: int) -> str:
    return str(seg[n]) if n < len(seg) else ""


def errors_of(raw: bytes, dialect=None) -> MessageError:
    with pytest.raises(MessageError) as info:
        parse(raw, dialect)
    return info.value


# --- MLLP framing --------------------------------------------------------------------


def test_frame_wraps_payload():
    assert frame(b"MSH|x") == b"\x0bMSH|x\x1c\r"
    assert MllpBuffer.frame(b"MSH|x") == frame(b"MSH|x")


def test_frames_split_across_many_feeds():
    buffer = MllpBuffer()
    stream = frame(samples.MINDRAY_BS_CHEMISTRY) + frame(samples.MINDRAY_QRY_Q02)
    frames = []
    for i in range(len(stream)):
        frames += buffer.feed(stream[i : i + 1])
        if i == 5:
            assert buffer.pending == 6  # SB and five bytes of the first frame
    assert frames == [samples.MINDRAY_BS_CHEMISTRY, samples.MINDRAY_QRY_Q02]
    assert buffer.pending == 0 and buffer.discarded == 0


def test_end_block_and_cr_in_separate_feeds():
    buffer = MllpBuffer()
    assert buffer.feed(b"\x0bMSH|a\x1c") == []
    assert buffer.pending == 7
    assert buffer.feed(b"\r") == [b"MSH|a"]


def test_two_frames_in_one_feed():
    buffer = MllpBuffer()
    assert buffer.feed(frame(b"MSH|1") + frame(b"MSH|2")) == [b"MSH|1", b"MSH|2"]


def test_garbage_before_start_block_is_discarded():
    buffer = MllpBuffer()
    assert buffer.feed(b"\r\n\x00noise\x1c\r" + frame(b"MSH|1")) == [b"MSH|1"]
    assert buffer.discarded == 10
    assert buffer.feed(b"more noise") == [] and buffer.pending == 0


def test_dropped_connection_mid_frame_leaves_pending_bytes():
    buffer = MllpBuffer()
    data = frame(samples.MINDRAY_BS_CHEMISTRY)
    assert buffer.feed(data[:200]) == []
    assert buffer.pending == 200  # what the listener discards when the peer goes away
    buffer.reset()
    assert buffer.pending == 0
    assert buffer.feed(frame(b"MSH|next")) == [b"MSH|next"]


def test_missing_cr_tolerated_only_before_next_frame():
    buffer = MllpBuffer()
    assert buffer.feed(b"\x0bMSH|1\x1c\x0bMSH|2\x1c\r") == [b"MSH|1", b"MSH|2"]
    # A 0x1C followed by anything else is data, the frame goes on.
    assert buffer.feed(b"\x0bMSH|a\x1cb\x1c\r") == [b"MSH|a\x1cb"]
    # At the end of what was received, the 0x1C waits for its CR.
    assert buffer.feed(b"\x0bMSH|3\x1c") == [] and buffer.pending > 0


def test_bare_end_block_option():
    buffer = MllpBuffer(bare_eb=True)
    assert buffer.feed(b"\x0bMSH|1\x1c") == [b"MSH|1"]
    assert buffer.feed(b"\r\x0bMSH|2\x1c\r") == [b"MSH|2"]


def test_start_block_inside_a_frame_restarts_it():
    buffer = MllpBuffer()
    assert buffer.feed(b"\x0bMSH|half\x0bMSH|whole\x1c\r") == [b"MSH|whole"]
    assert buffer.discarded == 9


def test_oversize_frame_raises_and_resyncs():
    buffer = MllpBuffer(max_frame=100)
    big = b"MSH|" + b"X" * 300
    with pytest.raises(FrameTooLarge) as info:
        buffer.feed(frame(b"MSH|1") + frame(big) + frame(b"MSH|2"))
    assert info.value.frames == [b"MSH|1", b"MSH|2"]  # the others still count
    assert info.value.head.startswith(b"MSH|XXX") and len(info.value.head) <= 4096
    assert buffer.pending == 0
    assert buffer.feed(frame(b"MSH|3")) == [b"MSH|3"]


def test_oversize_frame_across_feeds():
    buffer = MllpBuffer(max_frame=1000)
    head = b"MSH|^~\\&|A|B|||20240611||ORU^R01|CTL-9|P|2.3.1\r"
    assert buffer.feed(b"\x0b" + head + b"Y" * 500) == []
    with pytest.raises(FrameTooLarge) as info:
        buffer.feed(b"Y" * 600)
    assert info.value.frames == [] and info.value.head.startswith(head)
    assert buffer.feed(b"Y" * 5000 + b"\x1c\r") == []  # the rest of it: skipped
    assert buffer.feed(frame(b"MSH|ok")) == [b"MSH|ok"]
    # The AR for it can still name the message.
    ack = segments_of(build_ack(info.value.head, "AR", "message too large"))
    assert field(ack["MSA"][0], 2) == "CTL-9"


# --- character sets ---------------------------------------------------------------------


@pytest.mark.parametrize("label", ["UNICODE UTF-8", "UTF-8", "UNICODE", ""])
def test_utf8_vietnamese_survives(label):
    raw = oru(f"PID|1||P1||{VIETNAMESE}", "OBR|1|S1", "OBX|1|NM|GLU|GLU|5.2", msh18=label)
    assert VIETNAMESE in hl7v2.decode(raw)
    assert parse(raw).extra["patient_name"] == VIETNAMESE


def test_latin1_from_msh18():
    message = parse(samples.GENERIC_V24_ORU)
    assert message.charset == "8859/1"
    assert message.extra["patient_name"] == "Müller Hans"


def test_ascii_with_other_bytes_is_rejected():
    raw = oru(f"PID|1||P1||{VIETNAMESE}", "OBR|1|S1", "OBX|1|NM|GLU|GLU|5.2", msh18="ASCII")
    error = errors_of(raw)
    assert error.code == "AR" and "ASCII" in error.reason and "offset" in error.reason
    # An analyzer known to mislabel its bytes: the dialect says what they are.
    assert parse(raw, {"charset": "UTF-8"}).extra["patient_name"] == VIETNAMESE


def test_no_charset_vietnamese_windows():
    name = "Đoàn Văn Tư"  # every letter exists precomposed in cp1258
    raw = oru(f"PID|1||P1||{name}", "OBR|1|S1", "OBX|1|NM|GLU|GLU|5.2", msh18="")
    raw = raw.decode("utf-8").encode("cp1258")
    message = parse(raw)
    assert message.extra["patient_name"] == name and message.extra["codec"] == "cp1258"


def test_byte_order_mark_and_leading_whitespace():
    raw = b"\xef\xbb\xbf\r\n" + samples.MINDRAY_BS_VIETNAMESE
    assert parse(raw).extra["patient_name"] == VIETNAMESE


# --- results: the samples ------------------------------------------------------------------


def test_mindray_bs_chemistry():
    m = parse(samples.MINDRAY_BS_CHEMISTRY)
    assert (m.protocol, m.message_type, m.control_id, m.version) == (
        "hl7",
        "ORU^R01",
        "1024",
        "2.3.1",
    )
    assert (m.sending_application, m.sending_facility, m.charset) == ("Mindray", "BS-240", "ASCII")
    assert m.sent_at == datetime(2024, 6, 11, 9, 30, 15, tzinfo=HCM)
    assert m.patient_ids == ["BN-000123"] and not m.qc
    got = [(o.test_name, o.value, o.unit, o.reference_range, o.flags) for o in m.observations]
    assert got == [
        ("GLU", "7.8", "mmol/L", "3.9-6.4", "H"),
        ("UREA", "5.1", "mmol/L", "2.5-7.5", "N"),
        ("CREA", "55", "umol/L", "62-106", "L"),
        ("AST", "52", "U/L", "0-40", "H"),
        ("ALT", "61", "U/L", "0-41", "H"),
    ]
    glu = m.observations[0]
    assert (glu.specimen_id, glu.test_code, glu.status, glu.value_type) == (
        "2406110012",
        "1",
        "F",
        "NM",
    )
    assert glu.observed_at == datetime(2024, 6, 11, 9, 20, 10, tzinfo=HCM)
    assert [o.sequence for o in m.observations] == [1, 2, 3, 4, 5]
    assert glu.extra["specimen_field"] == "OBR-2" and not glu.qc


def test_mindray_bc_hematology():
    m = parse(samples.MINDRAY_BC_CBC)
    assert len(m.observations) == 25
    by = {o.test_name: o for o in m.observations}
    wbc = by["WBC"]
    assert (wbc.specimen_id, wbc.test_code, wbc.value, wbc.unit) == (
        "2406110014",
        "6690-2",
        "11.62",
        "10*9/L",
    )
    assert wbc.flags == "H~N" and wbc.extra["coding_system"] == "LN"
    assert wbc.extra["specimen_field"] == "OBR-3"
    assert by["HGB"].flags == "L~N" and by["PLT"].value == "263"
    assert by["Test Mode"].value == "CBC+DIFF" and by["Test Mode"].value_type == "IS"
    histogram = by["WBC Histogram. BMP"]
    assert histogram.value_type == "ED"
    assert histogram.value == "^Image^BMP^Base64^Qk02AAAAAAAAADYAAAAoAAAA"  # components kept
    assert m.patient_ids == ["BN-000123"] and m.extra["patient_name"] == "Tran Van Binh"


def test_ihe_law_oul_r22():
    m = parse(samples.IHE_LAW_OUL_R22)
    assert m.message_type == "OUL^R22" and m.version == "2.5.1" and m.charset == "UNICODE UTF-8"
    assert m.extra["patient_name"] == VIETNAMESE and m.extra["profile"] == "LAB-29"
    assert m.sent_at == datetime(2024, 6, 11, 10, 35, 12, tzinfo=timezone(timedelta(hours=7)))
    crp, tnt, glu = m.observations
    assert {o.specimen_id for o in m.observations} == {"2406110016"}
    assert crp.extra["specimen_field"] == "SPM-2"
    assert (crp.test_code, crp.test_name, crp.value, crp.unit) == (
        "CRP",
        "C-reactive protein",
        "<0.5",
        "mg/L",
    )
    assert crp.extra["equipment"] == ["C311", "1501-77"]
    assert (tnt.value_type, tnt.value, tnt.extra["text"]) == ("SN", "<^0.010", "<0.010")
    # No OBX-14: the analysis time (OBX-19) stands in.
    assert tnt.observed_at == datetime(2024, 6, 11, 10, 31, tzinfo=HCM)
    assert glu.flags == "H" and glu.extra["comments"] == ["Lipemic sample&diluted 1:2"]
    assert not m.qc and not any(o.qc for o in m.observations)


def test_generic_v24_message():
    m = parse(samples.GENERIC_V24_ORU)
    assert m.version == "2.4" and m.message_type == "ORU^R01"
    na, k, ratio, hemo = m.observations
    assert na.specimen_id == "2406110017"  # OBR-2 component 1, without the namespace
    assert na.observed_at == datetime(2024, 6, 11, 10, 40, tzinfo=timezone(timedelta(hours=7)))
    assert k.extra["comments"] == ["Hemolysis index 2+: potassium may be falsely high"]
    assert ratio.test_name == "Na&K ratio"  # \T\ unescaped
    assert hemo.value == "2+^Moderate\\S\\visible^L"  # structured: escapes kept
    assert m.sent_at == datetime(2024, 6, 11, 10, 45, tzinfo=timezone(timedelta(hours=7)))


# --- results: the rules -------------------------------------------------------------------


def test_specimen_id_order():
    segs = ["PID|1|PID2-ID|PID3-ID", "SPM|1|SPM-ID", "OBR|1|OBR2-ID|OBR3-ID", "OBX|1|NM|A||1"]
    assert parse(oru(*segs)).observations[0].specimen_id == "OBR2-ID"
    segs[2] = "OBR|1||OBR3-ID"
    assert parse(oru(*segs)).observations[0].specimen_id == "OBR3-ID"
    segs[2] = "OBR|1"
    assert parse(oru(*segs)).observations[0].specimen_id == "SPM-ID"
    segs[1] = "SPM|1"
    assert parse(oru(*segs)).observations[0].specimen_id == "PID2-ID"
    segs[0] = "PID|1||PID3-ID^^^H^MR~OTHER"
    obs = parse(oru(*segs)).observations[0]
    assert (obs.specimen_id, obs.extra["specimen_field"]) == ("PID3-ID", "PID-3")
    segs[0] = "PID|1"
    obs = parse(oru(*segs)).observations[0]
    assert obs.specimen_id == "" and "specimen_field" not in obs.extra


def test_specimen_id_from_pid2_sample():
    m = parse(samples.MINDRAY_HEMATOLOGY_PID2)
    assert [o.specimen_id for o in m.observations] == ["2406110015"] * 2
    assert m.observations[0].extra["specimen_field"] == "PID-2"


def test_specimen_id_trimmed_components_and_nulls():
    m = parse(oru('OBR|1|""|  2406110020 ^LAB', "OBX|1|NM|A||1"))
    assert m.observations[0].specimen_id == "2406110020"  # "" is HL7 null: skipped
    # SPM-2: placer-assigned id, else the filler-assigned one.
    m = parse(oru("SPM|1|^A-0042&C311", "OBR|1", "OBX|1|NM|A||1"))
    assert m.observations[0].specimen_id == "A-0042"


def test_specimen_fields_from_dialect():
    dialect = {"specimen_fields": ["OBR-3", "OBR-2"]}
    m = parse(samples.MINDRAY_BS_CHEMISTRY, dialect)
    assert {o.specimen_id for o in m.observations} == {"17"}
    # An explicit component, and fields we do not know of are ignored, not fatal.
    m = parse(oru("OBR|1|X^Y", "OBX|1|NM|A||1"), {"specimen_fields": ["ZZZ-9", "OBR-2.2"]})
    assert m.observations[0].specimen_id == "Y"


def test_specimen_context_follows_segments():
    m = parse(
        oru(
            "OBR|1|S-1",
            "OBX|1|NM|A||1",
            "OBR|2|S-2",
            "OBX|1|NM|B||2",
            "PID|2||P-2",
            "OBX|1|NM|C||3",  # a new patient: the old OBR is not theirs
        )
    )
    assert [o.specimen_id for o in m.observations] == ["S-1", "S-2", "P-2"]
    assert m.patient_ids == ["P-2"]


def test_observation_fields():
    m = parse(
        oru(
            "OBR|1|S1",
            "OBX||CE|^Glucose^L||7.1~7.3|^mmol/L|3.9-6.4|H~A|||C|||202406110930",
            "OBX||NM|B||x|||||||||2024061309",
            "OBX|7|NM|C||1||||||F|||notatime",
            "OBX|8|NM|D||1||||||F|||20241341",
        )
    )
    a, b, c, d = m.observations
    assert (a.test_code, a.test_name) == ("Glucose", "Glucose")  # OBX-3.1 empty
    assert a.value == "7.1~7.3" and a.unit == "mmol/L" and a.flags == "H~A"
    assert (a.status, a.value_type) == ("C", "CE")
    assert a.observed_at == datetime(2024, 6, 11, 9, 30, tzinfo=HCM)  # no seconds
    assert b.observed_at == datetime(2024, 6, 13, 9, tzinfo=HCM)
    assert c.observed_at is None and d.observed_at is None  # unreadable: no time, no error
    assert [o.sequence for o in m.observations] == [1, 2, 7, 8]  # OBX-1, else the index


def test_timezone_from_dialect():
    raw = oru("OBR|1|S1", "OBX|1|NM|A||1||||||F|||20240611093000")
    observed = parse(raw, {"timezone": "UTC"}).observations[0].observed_at
    assert observed == datetime(2024, 6, 11, 9, 30, tzinfo=UTC)


def test_crlf_is_accepted():
    raw = samples.MINDRAY_BS_CHEMISTRY.replace(b"\r", b"\r\n")
    assert len(parse(raw).observations) == 5


def test_nonstandard_delimiters():
    raw = (
        b"MSH#*$@%#Mindray#BS-240#####ORU*R01#5#P#2.3.1\r"
        b"OBR#1#S-9*LAB\rOBX#1#CE#A*Alpha##1*2$3#u##H$N#\r"
    )
    m = parse(raw)
    obs = m.observations[0]
    assert (obs.specimen_id, obs.test_name, obs.flags) == ("S-9", "Alpha", "H~N")
    assert obs.value == "1^2~3"  # written with the standard delimiters
    ack = segments_of(build_ack(m, "AA"))
    assert field(ack["MSA"][0], 2) == "5"


# --- QC ---------------------------------------------------------------------------------------


def test_qc_mindray_msh16():
    m = parse(samples.MINDRAY_BS_QC)
    assert m.qc and m.extra["run_kind"] == "qc" and all(o.qc for o in m.observations)
    calibration = samples.MINDRAY_BS_QC.replace(b"||||2||ASCII", b"||||1||ASCII")
    assert parse(calibration).extra["run_kind"] == "calibration"


def test_qc_ihe_specimen_role():
    m = parse(samples.IHE_LAW_QC)
    assert m.qc and m.observations[0].qc and m.observations[0].specimen_id == "PCCC1-LOT4471"


def test_qc_by_prefix_and_obr4():
    raw = oru("OBR|1|QC-L1-2406", "OBX|1|NM|A||1", "OBR|2|2406110099", "OBX|1|NM|A||1")
    qc, patient = parse(raw).observations
    assert qc.qc and not patient.qc
    assert not parse(raw).qc  # not every result is QC: the message is not
    assert not parse(raw, {"qc_specimen_prefixes": []}).observations[0].qc
    assert parse(raw, {"qc_specimen_prefixes": "24"}).observations[1].qc
    hematology_qc = oru("OBR|1||L-9|00003^L-J QC^99MRC", "OBX|1|NM|6690-2^WBC^LN||7.1")
    assert parse(hematology_qc).observations[0].qc


def test_processing_id_kept_and_not_qc():
    raw = samples.MINDRAY_BS_CHEMISTRY.replace(b"|1024|P|", b"|1024|T|")
    m = parse(raw)
    assert m.extra["processing_id"] == "T" and not m.qc


# --- queries and acks from analyzers ----------------------------------------------------------


def test_mindray_query():
    m = parse(samples.MINDRAY_QRY_Q02)
    assert m.message_type == "QRY^Q02" and m.observations == []
    (query,) = m.queries
    assert query.specimen_ids == ["2406110012"] and query.query_id == "31"
    assert query.extra["qrd"] == "QRD|20240611080102|R|D|31|||RD|2406110012|OTH|||T|"


def test_ihe_query():
    m = parse(samples.IHE_QBP_Q11)
    assert m.message_type == "QBP^Q11"
    (query,) = m.queries
    assert query.specimen_ids == ["2406110016"] and query.query_id == "QT-8812"
    assert query.extra["query_name"] == "WOS^Work Order Step^IHE_LABTF"
    # Roche cobas spell the same query QBP^WOS.
    cobas = parse(samples.IHE_QBP_Q11.replace(b"QBP^Q11^QBP_Q11", b"QBP^WOS^QBP_Q11"))
    assert cobas.message_type == "QBP^Q11" and cobas.extra["event"] == "WOS"


def test_analyzer_ack():
    m = parse(samples.IHE_ACK_O33)
    assert m.message_type == "ACK" and m.extra["ack_code"] == "AA"
    assert m.extra["acked_control_id"] == "202406110801020007"


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        (b"", "AR", "no MSH segment"),
        (b"PID|1||x\rOBX|1|NM|A||1\r", "AR", "no MSH segment"),
        (b"\x00\x01garbage", "AR", "no MSH segment"),
        (b"MSH|^~\\|A|B|||2024||ORU^R01|1|P|2.3.1\r", "AR", "wrong delimiters"),
        (b"MSH||^~\\&|A|B|||2024||ORU^R01|1|P|2.3.1\r", "AR", "wrong delimiters"),
        (b"MSH|^~\\^|A|B|||2024||ORU^R01|1|P|2.3.1\r", "AR", "wrong delimiters"),
        (b"MSH|^~", "AR", "wrong delimiters"),
        (
            b"MSH|^~\\&|A|B|||2024||ADT^A01|1|P|2.3.1\rPID|1\r",
            "AE",
            "unsupported message type ADT^A01",
        ),
        (b"MSH|^~\\&|A|B|||2024||ORM^O01|1|P|2.3.1\r", "AE", "unsupported message type ORM^O01"),
        (b"MSH|^~\\&|A|B|||2024\r", "AE", "MSH-9 message type is missing"),
        (b"MSH|^~\\&|A|B|||2024||ORU^R01|1|P|2.3.1\r", "AE", "without OBR"),
        (b"MSH|^~\\&|A|B|||2024||QRY^Q02|1|P|2.3.1\r", "AE", "without QRD"),
        (b"MSH|^~\\&|A|B|||2024||QBP^Q11|1|P|2.5.1\r", "AE", "without QPD"),
    ],
)
def test_bad_input_answered_with_a_reason(raw, code, words):
    error = errors_of(raw)
    assert error.code == code and words in error.reason
    ack = segments_of(build_ack(raw, error.code, error.reason))
    assert field(ack["MSA"][0], 1) == code


def test_lf_separated_segments_are_refused():
    raw = samples.MINDRAY_BS_CHEMISTRY.replace(b"\r", b"\n")
    error = errors_of(raw)
    assert (error.code, error.reason) == ("AE", "segments are separated by LF, not CR")
    # The ACK still names the message: its MSH line is readable.
    ack = segments_of(build_ack(raw, error.code, error.reason))
    assert field(ack["MSA"][0], 2) == "1024"
    # A line break inside a text field is not a segment break.
    inside = oru("OBR|1|S1", "OBX|1|TX|NOTE||line one\nline two")
    assert parse(inside).observations[0].value == "line one\nline two"


def test_two_messages_in_one_frame():
    error = errors_of(samples.MINDRAY_BS_CHEMISTRY + samples.MINDRAY_BS_QC)
    assert error.code == "AE" and "more than one message" in error.reason


# --- never crash ------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_parse_never_crashes_on_bytes(data):
    for raw in (data, b"MSH|^~\\&|" + data, b"MSH|^~\\&|A|B|||2024||ORU^R01|1|P|2.3.1\r" + data):
        try:
            parse(raw)
        except MessageError as e:
            assert e.code in ("AE", "AR") and e.reason
        build_ack(raw, "AE", "x")  # and an answer can always be written


_SAMPLE_LIST = list(samples.ALL_SAMPLES.values())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(_SAMPLE_LIST),
    st.lists(
        st.tuples(
            st.sampled_from(["set", "insert", "delete", "truncate"]),
            st.integers(min_value=0, max_value=4000),
            st.sampled_from(list(b"|^~\\&\r\n\x0b\x1c\x00\xff\xc3A0 ")),
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_parse_never_crashes_on_mutated_samples(sample, edits):
    raw = bytearray(sample)
    for op, pos, byte in edits:
        pos = pos % (len(raw) + 1)
        if op == "set" and pos < len(raw):
            raw[pos] = byte
        elif op == "insert":
            raw.insert(pos, byte)
        elif op == "delete" and pos < len(raw):
            del raw[pos]
        elif op == "truncate":
            del raw[pos:]
    try:
        message = parse(bytes(raw))
    except MessageError as e:
        assert e.code in ("AE", "AR") and e.reason
        build_ack(bytes(raw), e.code, e.reason)
    else:
        build_ack(message, "AA", dialect={"ack_style": "mindray"})
        build_ack(message, "AA")


def test_parse_never_crashes_on_random_truncations():
    rng = random.Random(5)
    for sample in _SAMPLE_LIST:
        for _ in range(30):
            cut = rng.randrange(len(sample) + 1)
            with contextlib.suppress(MessageError):
                parse(sample[:cut])


def test_splitter_agrees_with_python_hl7():
    """Our fast splitter reads every sample field exactly as hl7.parse does."""
    for raw in samples.ALL_SAMPLES.values():
        text = hl7v2.decode(raw)
        seps = hl7v2._check_delimiters(raw)
        ours = hl7v2._split_segments(text, seps)
        theirs = hl7.parse(text)
        assert len(ours) == len(theirs)
        for mine, segment in zip(ours, theirs, strict=True):
            assert mine == [str(f) for f in segment]


# --- ACKs ---------------------------------------------------------------------------------------


def test_ihe_ack_accepted():
    incoming = parse(samples.IHE_LAW_OUL_R22)
    ack = build_ack(incoming, "AA", now=NOW)
    segs = segments_of(ack)
    msh, msa = segs["MSH"][0], segs["MSA"][0]
    assert [field(msh, n) for n in (3, 4, 5, 6)] == ["BENHAN", "TTYT-CUCHI", "C311", "LAB"]
    assert field(msh, 7) == "20240611104005+0700"
    assert field(msh, 9) == "ACK^R22^ACK"
    assert field(msh, 10) and field(msh, 10) != "A-55012"
    assert [field(msh, n) for n in (11, 12, 18)] == ["P", "2.5.1", "UNICODE UTF-8"]
    assert (field(msa, 1), field(msa, 2)) == ("AA", "A-55012")
    assert "ERR" not in segs


def test_ihe_ack_error_has_err_segment():
    raw = b"MSH|^~\\&|LAB|X|BENHAN||2024||ADT^A01|C-77|P|2.5.1\rPID|1\r"
    error = errors_of(raw)
    segs = segments_of(build_ack(raw, error.code, error.reason, {"our_application": "EMR"}))
    msh, msa, err = segs["MSH"][0], segs["MSA"][0], segs["ERR"][0]
    assert field(msh, 3) == "BENHAN" and field(msh, 5) == "LAB"  # their MSH-5 echoed back
    assert field(msh, 9) == "ACK^A01^ACK"
    assert (field(msa, 1), field(msa, 2)) == ("AE", "C-77")
    assert field(err, 3) == "200^Unsupported message type^HL70357"
    assert field(err, 4) == "E"
    assert field(err, 7) == "unsupported message type ADT\\S\\A01"  # escaped on the wire


def test_ihe_ack_defaults_without_msh():
    segs = segments_of(build_ack(b"\x00garbage", "AR", "no MSH segment", {"our_facility": "TTYT"}))
    msh, msa, err = segs["MSH"][0], segs["MSA"][0], segs["ERR"][0]
    assert [field(msh, n) for n in (3, 4, 9, 11, 12)] == ["BENHAN", "TTYT", "ACK", "P", "2.5.1"]
    assert (field(msa, 1), field(msa, 2)) == ("AR", "")
    assert field(err, 3).startswith("100^")
    assert segments_of(build_ack(None, "AR", "x"))["MSA"][0][1] == ["AR"]


def test_ack_overrides_and_escaping():
    reason = "bad value 5|6^7&8~9\\x"
    ack = build_ack(
        samples.MINDRAY_BS_CHEMISTRY, "AE", reason, control_id="OVR-1", error_code="102"
    )
    parsed = hl7.parse(ack.decode())
    err = parsed.segment("ERR")
    assert parsed.segment("MSA")[2][0] == "OVR-1"
    assert parsed.unescape(str(err[7])) == reason
    assert str(err[3]) == "102^Data type error^HL70357"
    # 2.3.1 senders get the text in MSA-3 too (ERR-7 does not exist before 2.5).
    assert parsed.unescape(str(parsed.segment("MSA")[3])) == reason


def test_mindray_ack_layout():
    m = parse(samples.MINDRAY_BS_CHEMISTRY)
    ack = build_ack(m, "AA", dialect={"ack_style": "mindray"}, now=NOW)
    lines = ack.decode("ascii").split("\r")
    assert lines[0].startswith("MSH|^~\\&|||||20240611104005||ACK^R01|")
    assert lines[0].endswith("|P|2.3.1||||0||ASCII|||")
    assert lines[1] == "MSA|AA|1024|Message accepted|||0|"
    assert lines[2:] == [""]
    segs = segments_of(ack)
    assert field(segs["MSH"][0], 10) not in ("", "1024")


def test_mindray_ack_error_and_event():
    raw = samples.MINDRAY_QRY_Q02.replace(b"QRD|", b"XYZ|")
    error = errors_of(raw)
    ack = build_ack(raw, error.code, error.reason, {"ack_style": "mindray"})
    msh, msa = ack.decode().split("\r")[:2]
    assert "|ACK^Q02|" in msh
    assert msa == "MSA|AE|31|QRY\\S\\Q02 without QRD segment|||100|"
    # Unparseable and no MSH at all: still the Mindray layout, MSA-2 empty.
    msa = build_ack(b"", "AR", "no MSH segment", {"ack_style": "mindray"}).decode().split("\r")[1]
    assert msa == "MSA|AR||no MSH segment|||100|"


def test_ack_charset_follows_the_message():
    m = parse(samples.MINDRAY_BS_VIETNAMESE)
    ack = build_ack(m, "AE", f"bệnh nhân {VIETNAMESE} không khớp")
    assert VIETNAMESE in ack.decode("utf-8")
    ascii_ack = build_ack(parse(samples.MINDRAY_BS_CHEMISTRY), "AE", f"tên {VIETNAMESE}")
    assert b"Nguyen Thi Hang" in ascii_ack and ascii_ack.isascii()


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("unsupported message type ADT^A01", "200"),
        ("no MSH segment", "100"),
        ("wrong delimiters: …", "102"),
        ("MSH-18 says ASCII but …", "102"),
        ("required field missing", "101"),
        ("could not store the message; send again", "207"),
    ],
)
def test_hl7_error_codes(reason, code):
    assert hl7v2.hl7_error_code(reason) == code


# --- query answers --------------------------------------------------------------------------------


def pending(found: bool = True, **kw) -> PendingOrder:
    values = {
        "specimen_id": "2406110012",
        "tests": [PendingTest("GLU", "Glucose"), PendingTest("AST", "AST^GOT")],
        "patient_id": "BN-000124",
        "patient_name": VIETNAMESE,
        "birth_date": date(1980, 1, 1),
        "sex": "F",
        "priority": "S",
        "collected_at": datetime(2024, 6, 11, 8, 5, tzinfo=HCM),
        "specimen_type": "serum",
        "found": found,
    } | kw
    return PendingOrder(**values)


def test_mindray_answer_found():
    query = parse(samples.MINDRAY_QRY_Q02.replace(b"|ASCII|", b"|UNICODE UTF-8|"))
    qck, dsr = hl7v2.answer_query(query, [pending()], {}, now=NOW)
    lines = qck.decode().split("\r")
    assert lines[0].startswith("MSH|^~\\&|||||20240611104005||QCK^Q02|")
    assert lines[1:] == ["MSA|AA|31|Message accepted|||0|", "ERR|0|", "QAK|SR|OK|", ""]
    lines = dsr.decode().split("\r")
    assert "|DSR^Q03|" in lines[0] and lines[0].endswith("|P|2.3.1||||0||UNICODE UTF-8|||")
    assert lines[1:4] == ["MSA|AA|31|Message accepted|||0|", "ERR|0|", "QAK|SR|OK|"]
    assert lines[4] == "QRD|20240611080102|R|D|31|||RD|2406110012|OTH|||T|"  # echoed
    assert lines[5] == "QRF|BS-240|20240611000000|20240611235959|||RCT|COR|ALL||"
    dsp = {int(s.split("|")[1]): s.split("|")[3] for s in lines if s.startswith("DSP|")}
    assert sorted(dsp) == list(range(1, 31))
    assert dsp[1] == "BN-000124" and dsp[3] == VIETNAMESE and dsp[4] == "19800101000000"
    assert dsp[5] == "F" and dsp[21] == "2406110012" and dsp[23] == "20240611080500"
    assert dsp[24] == "Y" and dsp[26] == "serum"
    assert dsp[29] == "GLU^^^" and dsp[30] == "AST^^^"
    assert lines[-2:] == ["DSC||", ""]
    assert all(s == "" or s.endswith("|||") for s in lines if s.startswith("DSP"))


def test_mindray_answer_not_found_and_ascii():
    query = parse(samples.MINDRAY_QRY_Q02)
    (qck,) = hl7v2.answer_query(query, [pending(found=False)], {}, now=NOW)
    assert b"QAK|SR|NF|" in qck
    (qck,) = hl7v2.answer_query(query, [pending(tests=[])], {}, now=NOW)
    assert b"QAK|SR|NF|" in qck  # nothing to run is nothing found
    _qck, dsr = hl7v2.answer_query(
        query, [pending(priority="R", specimen_type="huyết tương")], {}, now=NOW
    )
    assert dsr.isascii() and b"DSP|3||Nguyen Thi Hang|||" in dsr  # ASCII analyzer
    assert b"DSP|24||N|||" in dsr and b"DSP|26||plasma|||" in dsr
    _qck, dsr = hl7v2.answer_query(
        query, [pending(specimen_type="nước tiểu")], {"sample_types": {"nước tiểu": "Urine"}}
    )
    assert b"DSP|26||Urine|||" in dsr


def test_ihe_answer_found():
    query = parse(samples.IHE_QBP_Q11)
    order = pending(patient_name="Nguyễn|Thị^Hằng & Co", specimen_id="2406110016")
    rsp, oml = hl7v2.answer_query(query, [order], {"our_application": "EMR"}, now=NOW)
    segs = segments_of(rsp)
    msh = segs["MSH"][0]
    assert field(msh, 9) == "RSP^K11^RSP_K11" and field(msh, 12) == "2.5.1"
    assert [field(msh, n) for n in (3, 4, 5, 6)] == ["BENHAN", "TTYT-CUCHI", "C311", "LAB"]
    assert field(msh, 21) == "LAB-27^IHE"
    assert [str(f) for f in segs["MSA"][0][1:3]] == ["AA", "Q-8812"]
    qak = segs["QAK"][0]
    assert (field(qak, 1), field(qak, 2)) == ("QT-8812", "OK")
    assert field(qak, 3) == "WOS^Work Order Step^IHE_LABTF"
    assert str(segs["QPD"][0]) == "QPD|WOS^Work Order Step^IHE_LABTF|QT-8812|2406110016"

    parsed = hl7.parse(oml.decode("utf-8"))
    assert str(parsed.segment("MSH")[9]) == "OML^O33^OML_O33"
    assert str(parsed.segment("MSH")[21]) == "LAB-28^IHE"
    pid = parsed.segment("PID")
    assert str(pid[3]) == "BN-000124^^^EMR^MR"
    assert parsed.unescape(str(pid[5][0][0])) == "Nguyễn|Thị"  # escaped on the way out
    assert parsed.unescape(str(pid[5][0][1])) == "Hằng & Co"
    assert (str(pid[7]), str(pid[8])) == ("19800101", "F")
    spm = parsed.segment("SPM")
    assert str(spm[2]) == "2406110016" and str(spm[4]) == "SER^Serum^HL70487"
    assert str(spm[17]) == "20240611080500+0700"
    assert str(parsed.segment("SAC")[3]) == "2406110016"
    order_segments = [str(s[0]) for s in parsed if str(s[0]) in ("ORC", "TQ1", "OBR")]
    assert order_segments == ["ORC", "TQ1", "OBR"] * 2
    obrs = parsed.segments("OBR")
    assert [str(o[2]) for o in obrs] == ["2406110016"] * 2
    assert str(obrs[0][4]) == "GLU^Glucose^L"
    assert parsed.unescape(str(obrs[1][4][0][1])) == "AST^GOT"
    assert str(parsed.segment("ORC")[1]) == "NW"
    assert str(parsed.segment("TQ1")[9]) == "S"
    # An OML is not something analyzers send us: refused with a reason, not a crash.
    assert "OML^O33" in errors_of(oml).reason


def test_ihe_answer_not_found():
    query = parse(samples.IHE_QBP_Q11)
    (rsp,) = hl7v2.answer_query(query, [], {}, now=NOW)
    assert field(segments_of(rsp)["QAK"][0], 2) == "NF"
    cobas = parse(samples.IHE_QBP_Q11.replace(b"QBP^Q11^QBP_Q11", b"QBP^WOS^QBP_Q11"))
    (rsp,) = hl7v2.answer_query(cobas, [], {}, now=NOW)
    assert field(segments_of(rsp)["MSH"][0], 9) == "RSP^WOS^RSP_K11"


def test_answer_query_refuses_results():
    with pytest.raises(ValueError, match="not a host query"):
        hl7v2.answer_query(parse(samples.MINDRAY_BS_CHEMISTRY), [], {})


# --- messages for the simulator -----------------------------------------------------------------

ROWS = [
    ("GLU", "Glucose", "7.8", "mmol/L", "3.9-6.4", "H"),
    ("CRP", "C-reactive protein", "<0.5", "mg/L", "0-5", ""),
    ("NAK", "Na&K|ratio", "23.6", "", "", "N"),
]


@pytest.mark.parametrize("style", ["mindray", "ihe"])
def test_build_oru_round_trip(style):
    raw = hl7v2.build_oru("2406110012", ROWS, style=style, control_id="SIM-1",
                          patient_name=VIETNAMESE, now=NOW)  # fmt: skip
    m = parse(raw)
    assert m.message_type == ("ORU^R01" if style == "mindray" else "OUL^R22")
    assert m.version == ("2.3.1" if style == "mindray" else "2.5.1")
    assert m.control_id == "SIM-1" and not m.qc
    assert m.extra["patient_name"] == VIETNAMESE
    got = [
        (o.test_code, o.test_name, o.value, o.unit, o.reference_range, o.flags)
        for o in m.observations
    ]
    assert got == ROWS
    assert {o.specimen_id for o in m.observations} == {"2406110012"}
    assert m.observations[0].observed_at == NOW
    assert [o.value_type for o in m.observations] == ["NM", "ST", "NM"]


@pytest.mark.parametrize("style", ["mindray", "ihe"])
def test_build_oru_qc_and_ascii(style):
    raw = hl7v2.build_oru("LOT-77", ROWS[:1], style=style, qc=True, charset="ASCII",
                          patient_name=VIETNAMESE)  # fmt: skip
    assert raw.isascii()
    m = parse(raw)
    assert m.qc and m.observations[0].qc
    assert m.extra["patient_name"] == "Nguyen Thi Hang"


@pytest.mark.parametrize("style", ["mindray", "ihe"])
def test_build_query_round_trip(style):
    m = parse(hl7v2.build_query("2406110012", style=style, control_id="Q-1"))
    assert m.message_type == ("QRY^Q02" if style == "mindray" else "QBP^Q11")
    assert m.queries[0].specimen_ids == ["2406110012"] and m.queries[0].query_id == "Q-1"
    with pytest.raises(ValueError):
        hl7v2.build_query("x", style="astm")


# --- through a real socket ----------------------------------------------------------------------


class TinyMllpServer:
    """One connection, on 127.0.0.1: MllpBuffer → parse → build_ack, like the listener."""

    def __init__(self, dialect: dict):
        self.dialect = dialect
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.port = self.sock.getsockname()[1]
        self.received: list[Message | MessageError] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            buffer = MllpBuffer()
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                for raw in buffer.feed(data):
                    try:
                        message = parse(raw, self.dialect)
                    except MessageError as e:
                        self.received.append(e)
                        reply = build_ack(raw, e.code, e.reason, self.dialect)
                    else:
                        self.received.append(message)
                        reply = build_ack(message, "AA", "", self.dialect)
                    conn.sendall(frame(reply))

    def close(self) -> None:
        self.sock.close()
        self.thread.join(timeout=5)


@pytest.mark.parametrize("style", ["mindray", "ihe"])
def test_python_hl7_client_gets_acks_over_mllp(style):
    server = TinyMllpServer({"ack_style": style})
    try:
        with MLLPClient("127.0.0.1", server.port) as client:
            client.socket.settimeout(5)
            # A result (str: the client encodes UTF-8), then a bad message (bytes).
            oru_text = hl7v2.build_oru("2406110012", ROWS, style=style,
                                       patient_name=VIETNAMESE).decode("utf-8")  # fmt: skip
            reply = client.send_message(oru_text)
            assert reply.startswith(b"\x0b") and reply.endswith(b"\x1c\r")
            ack = hl7.parse(reply.strip(b"\x0b\x1c\r").decode("utf-8"))
            assert str(ack.segment("MSA")[1]) == "AA"
            assert str(ack.segment("MSA")[2]) == hl7.parse(oru_text).segment("MSH")[10][0]
            bad = b"MSH|^~\\&|X|Y|||2024||ADT^A01|BAD-1|P|2.3.1\rPID|1\r"
            reply = client.send_message(bad)
            ack = hl7.parse(reply.strip(b"\x0b\x1c\r").decode("utf-8"))
            assert [str(ack.segment("MSA")[1]), str(ack.segment("MSA")[2])] == ["AE", "BAD-1"]
    finally:
        server.close()
    assert not server.thread.is_alive()
    ok, bad = server.received
    assert isinstance(ok, Message) and ok.extra["patient_name"] == VIETNAMESE
    assert isinstance(bad, MessageError) and "ADT^A01" in bad.reason
