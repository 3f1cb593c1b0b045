"""ASTM: the E1381 link byte by byte (Receiver, Sender), the E1394 records (parse and
the host's answers), then the whole thing on real sockets on 127.0.0.1 — serve_link as
the host, tests/lab/astm_sender.py (an independent E1381 implementation) as the
analyzer, faults included. No database."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from benhan.lab import astm
from benhan.lab.astm import ACK, ENQ, EOT, ETB, ETX, NAK, STX, Receiver, Sender
from benhan.lab.messages import MessageError, PendingOrder, PendingTest

from . import astm_samples as samples
from .astm_sender import Link, Received, receive_transmission, send_transmission

VN = ZoneInfo("Asia/Ho_Chi_Minh")


# --- frames -------------------------------------------------------------------------


def test_checksum_examples():
    # FN through ETX: "1" + "L|1|N" CR + ETX = 516 → 516 mod 256 = 4
    assert astm.checksum(b"1L|1|N\r\x03") == b"04"
    assert astm.make_frame(1, b"L|1|N\r") == b"\x021L|1|N\r\x0304\r\n"
    assert astm.checksum(b"1ABC\x03") == b"FA"  # 49+65+66+67+3 = 250
    assert astm.checksum(b"") == b"00"
    assert astm.checksum(b"\xff\x01") == b"00"  # wraps modulo 256
    # intermediate frame: ETB counts in the sum; frame number 0 after 7
    assert (
        astm.make_frame(8, b"AB", final=False)
        == b"\x020AB\x17" + astm.checksum(b"0AB\x17") + b"\r\n"
    )


def test_parse_frame_checks_the_checksum_and_accepts_lowercase():
    frame = astm.make_frame(3, b"R|1|^^^GLU|5.6\r")
    assert astm.parse_frame(frame) == (3, b"R|1|^^^GLU|5.6\r", True)
    low = frame[:-4] + frame[-4:-2].lower() + b"\r\n"
    assert astm.parse_frame(low)[0] == 3
    assert astm.parse_frame(frame[:-2]) == (3, b"R|1|^^^GLU|5.6\r", True)  # no CR LF
    bad = frame[:5] + b"X" + frame[6:]
    with pytest.raises(ValueError, match="checksum"):
        astm.parse_frame(bad)
    with pytest.raises(ValueError):
        astm.parse_frame(b"garbage")


def test_build_frames_one_record_per_frame_long_records_split_with_etb():
    records = [b"H|\\^&", b"P|1", b"O|1|S1", b"R|1|" + b"x" * 600,
               *[b"R|%d" % i for i in range(2, 8)], b"L|1|N"]  # fmt: skip
    frames = astm.build_frames(b"\r".join(records) + b"\r")
    parsed = [astm.parse_frame(f) for f in frames]
    assert [fn for fn, _, _ in parsed] == [1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5]
    # the 605-byte R record (with its CR): 240 + 240 + 125, ETB ETB ETX
    assert [len(t) for _, t, _ in parsed[3:6]] == [240, 240, 125]
    assert [final for _, _, final in parsed[3:6]] == [False, False, True]
    assert all(len(f) <= 247 for f in frames)
    assert b"".join(t for _, t, _ in parsed) == b"\r".join(records) + b"\r"


# --- Receiver ------------------------------------------------------------------------


def _frames(text: str | bytes, size: int = 240) -> list[bytes]:
    return astm.build_frames(text.encode() if isinstance(text, str) else text, size)


def _deliver(rx: Receiver, frames: list[bytes]) -> list[bytes]:
    replies = rx.feed(ENQ)
    for f in frames:
        replies += rx.feed(f)
    replies += rx.feed(EOT)
    return replies


def test_receiver_good_message():
    rx = Receiver()
    frames = _frames(samples.CHEMISTRY)
    assert _deliver(rx, frames) == [ACK] * (len(frames) + 1)
    assert rx.transmissions() == [samples.CHEMISTRY.encode()]
    assert rx.transmissions() == []  # drained
    assert rx.idle


def test_receiver_byte_by_byte_and_in_one_chunk():
    text = samples.HEMATOLOGY.encode()
    stream = ENQ + b"".join(_frames(text, 50)) + EOT
    got = []
    rx = Receiver(on_transmission=got.append)
    replies = [r for b in stream for r in rx.feed(bytes([b]))]
    assert replies == [ACK] * (1 + len(_frames(text, 50)))
    rx2 = Receiver()
    rx2.feed(stream)  # a pipelining sender: every frame answered, in order
    assert got == rx2.transmissions() == [text]


def test_receiver_etb_continuation_joins_without_inserting():
    long_record = b"R|1|^^^X|" + b"0123456789" * 70 + b"\r"
    text = b"H|\\^&\r" + long_record + b"L|1|N\r"
    frames = _frames(text)
    assert sum(f[-5] == ETB[0] for f in frames) == 2
    rx = Receiver()
    _deliver(rx, frames)
    assert rx.transmissions() == [text]


def test_receiver_bad_checksum_is_refused_then_the_retransmission_accepted():
    rx = Receiver()
    frames = _frames("H|\\^&\rP|1\rL|1|N\r")
    bad = frames[1][:-4] + (b"00" if frames[1][-4:-2] != b"00" else b"01") + b"\r\n"
    assert rx.feed(ENQ + frames[0]) == [ACK, ACK]
    assert rx.feed(bad) == [NAK]
    assert rx.feed(frames[1]) == [ACK]
    assert rx.feed(frames[2] + EOT) == [ACK]
    assert rx.transmissions() == [b"H|\\^&\rP|1\rL|1|N\r"]
    assert rx.counts["bad_checksum"] == 1


def test_receiver_stores_a_repeated_frame_once():
    rx = Receiver()
    frames = _frames("H|\\^&\rP|1\rL|1|N\r")
    assert rx.feed(ENQ + frames[0] + frames[1]) == [ACK, ACK, ACK]
    assert rx.feed(frames[1]) == [ACK]  # our ACK was lost: acknowledged again
    assert rx.feed(frames[2] + EOT) == [ACK]
    assert rx.transmissions() == [b"H|\\^&\rP|1\rL|1|N\r"]
    assert rx.counts["duplicate"] == 1


def test_receiver_lost_ack_then_damaged_retransmission_still_completes():
    rx = Receiver()
    frames = _frames("H|\\^&\rL|1|N\r")
    damaged = frames[1][:-4] + b"ZZ\r\n"
    assert rx.feed(ENQ + frames[0] + frames[1]) == [ACK] * 3  # the last ACK is lost, so …
    assert rx.feed(damaged) == [NAK]  # … the sender retransmits, damaged on the line
    assert rx.feed(frames[1]) == [ACK]  # then intact: a duplicate
    rx.feed(EOT)
    assert rx.transmissions() == [b"H|\\^&\rL|1|N\r"]


def test_receiver_refuses_frames_out_of_order():
    rx = Receiver()
    frames = _frames("H|\\^&\rP|1\rO|1\rL|1|N\r")
    assert rx.feed(ENQ + frames[0]) == [ACK, ACK]
    assert rx.feed(frames[2]) == [NAK]  # frame 3 before frame 2
    assert rx.feed(astm.make_frame(7, b"P|1\r")) == [NAK]
    assert rx.feed(b"\x02AP|1\r\x03" + astm.checksum(b"AP|1\r\x03") + b"\r\n") == [NAK]
    assert rx.feed(b"".join(frames[1:]) + EOT) == [ACK, ACK, ACK]
    assert rx.transmissions() == [b"H|\\^&\rP|1\rO|1\rL|1|N\r"]
    assert rx.counts["out_of_order"] == 3


def test_receiver_tolerates_frames_over_247_bytes():
    record = b"R|1|^^^X|" + b"9" * 1000 + b"\r"
    rx = Receiver()
    big = astm.make_frame(2, record)
    assert len(big) > 1000
    assert (
        _deliver(rx, [astm.make_frame(1, b"H|\\^&\r"), big, astm.make_frame(3, b"L|1\r")])
        == [ACK] * 4
    )
    assert rx.transmissions() == [b"H|\\^&\r" + record + b"L|1\r"]


def test_receiver_refuses_a_frame_beyond_any_reason():
    rx = Receiver()
    rx.feed(ENQ)
    assert rx.feed(astm.make_frame(1, b"x" * (astm.MAX_FRAME_BYTES + 10))) == [NAK]
    rx2 = Receiver(max_bytes=100)
    assert rx2.feed(ENQ + astm.make_frame(1, b"y" * 200)) == [ACK, NAK]
    rx2.feed(EOT)
    assert rx2.transmissions() == []


def test_receiver_timeout_mid_message_discards():
    rx = Receiver()
    frames = _frames(samples.CHEMISTRY)
    rx.feed(ENQ + b"".join(frames[:3]))
    assert not rx.idle
    rx.timeout()
    assert rx.idle and rx.counts["discarded"] == 1
    assert rx.feed(b"".join(frames[3:]) + EOT) == []  # the rest falls on deaf ears
    assert rx.transmissions() == []
    assert _deliver(rx, frames) == [ACK] * (len(frames) + 1)  # the resend goes through
    assert rx.transmissions() == [samples.CHEMISTRY.encode()]


def test_receiver_reset_mid_message_discards():
    rx = Receiver()
    frames = _frames(samples.CHEMISTRY)
    rx.feed(ENQ + b"".join(frames[:4]) + frames[4][:10])  # cut inside a frame
    rx.reset()
    assert rx.idle and rx.transmissions() == [] and rx.counts["discarded"] == 1


def test_receiver_busy_says_nak_to_enq():
    busy = [True]
    rx = Receiver(busy=lambda: busy[0])
    assert rx.feed(ENQ) == [NAK]
    assert rx.idle
    assert rx.feed(astm.make_frame(1, b"H|\\^&\r")) == []  # not established: ignored
    busy[0] = False
    assert rx.feed(ENQ) == [ACK]
    assert not rx.idle


def test_receiver_enq_mid_transmission_starts_over():
    rx = Receiver()
    frames = _frames(samples.QC)
    rx.feed(ENQ + b"".join(frames[:2]))
    assert rx.feed(ENQ) == [ACK]  # the sender gave up and began again
    assert _deliver(rx, frames)[1:] == [ACK] * len(frames)
    assert rx.transmissions() == [samples.QC.encode()]
    assert rx.counts["discarded"] == 1  # the first attempt; the empty restart is nothing


def test_receiver_eot_without_frames_and_stray_bytes():
    rx = Receiver()
    assert rx.feed(b"\r\nnoise" + STX + b"1H|\x03" + EOT + ACK) == []  # neutral: ignored
    assert rx.feed(ENQ + EOT) == [ACK]
    assert rx.transmissions() == [] and rx.idle and rx.counts["empty"] == 1
    assert rx.feed(ENQ + b"junk between frames" + astm.make_frame(1, b"L|1\r") + EOT) == [ACK, ACK]
    assert rx.transmissions() == [b"L|1\r"]


def test_receiver_discards_a_transmission_the_sender_aborted():
    frames = _frames(samples.QC)
    rx = Receiver()
    rx.feed(ENQ + frames[0])
    bad = frames[1][:-4] + b"ZZ\r\n"
    assert rx.feed(bad * 6) == [NAK] * 6
    rx.feed(EOT)  # six refusals: the sender aborts
    assert rx.transmissions() == [] and rx.counts["aborted"] == 1
    # EOT right after an intermediate (ETB) frame: the record was left open
    rx.feed(ENQ + _frames(b"R|1|" + b"x" * 300 + b"\r")[0] + EOT)
    assert rx.transmissions() == [] and rx.counts["aborted"] == 2
    # EOT in the middle of a frame, or where its checksum should be
    rx.feed(ENQ + frames[0] + frames[1][:4] + EOT)
    assert rx.transmissions() == [] and rx.counts["aborted"] == 3
    end = frames[1].index(ETX) + 1
    assert rx.feed(ENQ + frames[0] + frames[1][:end] + b"4" + EOT) == [ACK, ACK]
    assert rx.transmissions() == [] and rx.counts["aborted"] == 4


def test_receiver_adds_the_record_cr_a_sender_left_out():
    rx = Receiver()
    _deliver(rx, [astm.make_frame(1, b"H|\\^&"), astm.make_frame(2, b"L|1|N")])
    assert rx.transmissions() == [b"H|\\^&\rL|1|N\r"]


def test_receiver_frame_numbers_wrap_modulo_8():
    text = "".join(f"R|{i}|^^^T{i}|{i}\r" for i in range(1, 21))
    rx = Receiver()
    assert _deliver(rx, _frames(text)) == [ACK] * 21
    assert rx.transmissions() == [text.encode()]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), min_size=1,
                     max_size=400), min_size=1, max_size=12),
    st.integers(min_value=1, max_value=300), st.integers(min_value=1, max_value=97),
)  # fmt: skip
def test_sender_frames_reach_the_receiver_whatever_the_chunking(records, size, chunk):
    text = "".join(r.replace("\r", "") + "\r" for r in records if r.strip("\r")).encode()
    if not text:
        return
    stream = ENQ + b"".join(astm.build_frames(text, size)) + EOT
    rx = Receiver()
    replies = []
    for i in range(0, len(stream), chunk):
        replies += rx.feed(stream[i : i + chunk])
    assert set(replies) == {ACK}
    assert rx.transmissions() == [text]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_receiver_never_raises_on_noise(noise):
    rx = Receiver()
    for b in (noise, ENQ + noise, ENQ + noise + EOT):
        replies = rx.feed(b)
        assert set(replies) <= {ACK, NAK}
    rx.timeout()
    rx.reset()


# --- Sender ----------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


MESSAGE = "H|\\^&\rP|1\rO|1|S1\rR|1|^^^GLU|5.6\rL|1|N\r"


def test_sender_happy_path():
    tx = Sender(MESSAGE, clock=FakeClock())
    assert tx.start() == ENQ
    sent = []
    out = tx.feed(ACK)
    while out != [EOT]:
        sent += out
        out = tx.feed(ACK)
    assert tx.done and tx.outcome == "sent"
    assert b"".join(astm.parse_frame(f)[1] for f in sent) == MESSAGE.encode()
    assert [astm.parse_frame(f)[0] for f in sent] == [1, 2, 3, 4, 5]


def test_sender_retransmits_on_nak_then_aborts_after_six_refusals():
    tx = Sender(MESSAGE, clock=FakeClock())
    tx.start()
    first = tx.feed(ACK)
    assert tx.feed(NAK) == first  # the same frame again
    assert tx.feed(ACK) != first  # accepted: on to frame 2
    frame2 = tx.feed(NAK)
    for _ in range(4):  # frame 2 is now sent for the 2nd … 5th time
        assert tx.feed(NAK) == frame2
    # LIS01-A2: a frame "sent and not accepted six times" aborts the message
    assert tx.feed(NAK) == [EOT]
    assert tx.done and tx.outcome == "aborted" and tx.naks == 7
    assert tx.frames_sent == 2 + 6


def test_sender_waits_after_enq_nak_and_times_out_without_reply():
    clock = FakeClock()
    tx = Sender(MESSAGE, clock=clock)
    tx.start()
    assert tx.feed(NAK) == []  # receiver busy
    clock.now += astm.ENQ_RETRY_DELAY - 1
    assert tx.poll() == []
    clock.now += 1
    assert tx.poll() == [ENQ]  # ENQ again 10 s later
    assert tx.enq_attempts == 2
    clock.now += astm.SENDER_ACK_TIMEOUT
    assert tx.poll() == [EOT]  # no reply in 15 s: termination
    assert tx.outcome == "timeout"


def test_sender_gives_up_when_enq_keeps_being_refused():
    tx = Sender(MESSAGE, clock=FakeClock(), max_enq_attempts=3)
    tx.start()
    for _ in range(2):
        tx.feed(NAK)
        assert tx.timeout() == [ENQ]
    tx.feed(NAK)
    assert tx.timeout() == [] and tx.outcome == "refused"


def test_sender_frame_timeout_ends_with_eot():
    clock = FakeClock()
    tx = Sender(MESSAGE, clock=clock)
    tx.start()
    tx.feed(ACK)
    clock.now += 14.9
    assert tx.poll() == []
    clock.now += 0.2
    assert tx.poll() == [EOT] and tx.outcome == "timeout"


def test_sender_contention_host_yields():
    tx = Sender(MESSAGE, role="host", clock=FakeClock())
    tx.start()
    assert tx.feed(ENQ + b"more") == []
    assert tx.done and tx.outcome == "contention"
    assert tx.leftover == b"more"  # for the Receiver the host becomes


def test_sender_contention_instrument_insists_after_one_second():
    clock = FakeClock()
    tx = Sender(MESSAGE, role="instrument", clock=clock)
    tx.start()
    assert tx.feed(ENQ) == [] and not tx.done
    clock.now += astm.CONTENTION_DELAY_INSTRUMENT
    assert tx.poll() == [ENQ]
    assert len(tx.feed(ACK)) == 1  # then the first frame


def test_sender_treats_eot_reply_as_accepted_and_ignores_noise():
    tx = Sender(MESSAGE, clock=FakeClock())
    tx.start()
    tx.feed(ACK)
    second = tx.feed(EOT)  # receiver interrupt request: frame 1 was accepted
    assert astm.parse_frame(second[0])[0] == 2 and tx.interrupt_requested
    assert tx.feed(b"\n?") == []  # noise neither advances nor retransmits


def test_sender_and_receiver_talk():
    rx, tx = Receiver(), Sender(samples.HEMATOLOGY, clock=FakeClock(), frame_size=60)
    pending = [tx.start()]
    while pending:
        data = pending.pop(0)
        for reply in rx.feed(data):
            pending += tx.feed(reply)
        if data == EOT:
            break
    assert tx.outcome == "sent"
    assert rx.transmissions() == [samples.HEMATOLOGY.encode()]


# --- records -----------------------------------------------------------------------------


def test_parse_chemistry():
    msg = astm.parse(samples.CHEMISTRY.encode())
    assert (msg.protocol, msg.message_type) == ("astm", "ASTM")
    assert msg.control_id == "MSG0001" and msg.version == "LIS2-A2"
    assert msg.sending_application == "CHEM-200"
    assert msg.sent_at == datetime(2025, 3, 14, 9, 30, 15, tzinfo=VN)
    assert msg.patient_ids == ["BN0001234"] and not msg.qc
    obs = msg.observations
    assert [o.test_code for o in obs] == ["GLU", "URE", "CRE", "AST", "ALT"]
    assert {o.specimen_id for o in obs} == {"250314001"}  # "250314001^1^3": O.3 component 1
    glu, cre, alt = obs[0], obs[2], obs[4]
    assert (glu.test_name, glu.value, glu.unit, glu.reference_range, glu.flags, glu.status) == (
        "Glucose", "5.6", "mmol/L", "3.9 to 6.4", "N", "F",
    )  # fmt: skip
    assert cre.value == "<18" and cre.flags == "L"
    assert alt.status == "C" and alt.sequence == 5
    assert glu.observed_at == datetime(2025, 3, 14, 9, 29, tzinfo=VN)
    assert glu.extra["comments"] == ["Hemolysis index 12 within limits"]
    assert glu.extra["instrument"] == "CHEM-200" and glu.extra["operator"] == "tech1"
    assert msg.extra["orders"][0]["specimen_type"] == "serum"


def test_parse_hematology_sysmex_style():
    msg = astm.parse(samples.HEMATOLOGY)
    assert len(msg.observations) == 20
    assert [o.test_code for o in msg.observations] == samples.HEMATOLOGY_CODES
    # O.3 empty: the id is in O.4 "^^          250314002^B", found component-aware, trimmed
    assert {o.specimen_id for o in msg.observations} == {"250314002"}
    assert msg.observations[0].extra["specimen_source"] == "O.4"
    plt = msg.observations[7]
    assert (plt.test_code, plt.value, plt.unit, plt.flags) == ("PLT", "412", "10*3/uL", "H")
    assert plt.observed_at == datetime(2025, 3, 14, 9, 45, 1, tzinfo=VN)
    # the dialect can say exactly where the id is
    exact = astm.parse(samples.HEMATOLOGY, {"specimen_field": "O.4", "specimen_component": 2})
    assert exact.observations[0].specimen_id == "250314002"
    assert exact.observations[0].test_code == "WBC"


def test_dialect_prefers_the_instrument_specimen_id_and_moves_the_test_code():
    text = "H|\\^&\rO|1|HOST-1|INSTR-9^5|^^^GLU\rR|1|GLU^^^X-GLU|5\rL|1|N\r"
    assert astm.parse(text).observations[0].specimen_id == "HOST-1"
    obs = astm.parse(text, {"specimen_field": "O.4"}).observations[0]
    assert obs.specimen_id == "INSTR-9" and obs.test_code == "X-GLU"
    assert astm.parse(text, {"test_component": 0}).observations[0].test_code == "GLU"
    assert (
        astm.parse(text, {"specimen_fields": ["O.4"], "bogus": 1}).observations[0].specimen_id
        == "INSTR-9"
    )


def test_specimen_id_falls_back_to_the_patient_ids():
    msg = astm.parse("H|\\^&\rP|1||PAT-77\rO|1\rR|1|^^^GLU|5\rL|1|N\r")
    assert msg.observations[0].specimen_id == "PAT-77"
    assert msg.observations[0].extra["specimen_source"] == "P.4"
    none = astm.parse("H|\\^&\rR|1|^^^GLU|5\rL|1|N\r").observations[0]
    assert none.specimen_id == "" and none.test_code == "GLU"  # kept, for the unmatched queue


def test_comments_and_manufacturer_and_unknown_records_are_kept():
    msg = astm.parse(samples.WITH_MANUFACTURER)
    k, na = msg.observations
    assert k.extra["order_comments"] == ["Sample lipemic re-run advised"]
    assert k.extra["manufacturer_records"] == ["M|1|REAGENT^K^LOT5521^20260131"]
    assert na.extra["manufacturer_records"] == ["M|2|CALIBRATION^NA^20250310"]
    assert len(msg.extra["manufacturer_records"]) == 2
    assert msg.extra["unknown_records"] == ["S|1|vendor-defined scientific record"]
    assert k.value == "4.2" and na.value == "139"
    header_comment = astm.parse("H|\\^&\rC|1|I|line check^ok|G\rL|1|N\r")
    assert header_comment.extra["comments"] == ["line check ok"]


def test_quality_control_is_recognised():
    qc = astm.parse(samples.QC)
    assert qc.qc and all(o.qc for o in qc.observations)
    assert qc.observations[0].specimen_id == "QC-LOT4411"
    by_header = astm.parse(samples.CHEMISTRY.replace("||P|LIS2-A2", "||Q|LIS2-A2"))
    assert by_header.qc and all(o.qc for o in by_header.observations)
    by_prefix = astm.parse(samples.CHEMISTRY.replace("250314001^1^3", "QC-77"),
                           {"qc_specimen_prefixes": ["QC-"]})  # fmt: skip
    assert by_prefix.qc
    assert not any(
        o.qc for o in astm.parse(samples.CHEMISTRY, {"qc_specimen_prefixes": ["QC-"]}).observations
    )


def test_query_records():
    (q,) = astm.parse(samples.QUERY).queries
    assert q.specimen_ids == ["250314001"] and q.query_id == "1"
    assert q.extra["status"] == "O" and q.extra["tests"] == "ALL"
    q1, q2 = astm.parse(samples.QUERY_MANY).queries
    assert q1.specimen_ids == ["250314001", "250314004"]
    assert q2.specimen_ids == ["250314003"] and q2.query_id == "2"
    first = astm.parse("H|\\^&\rQ|1|SID-5^^^||ALL\rL|1|N\r").queries[0]
    assert first.specimen_ids == ["SID-5"]
    everything = astm.parse("H|\\^&\rQ|1|ALL||ALL\rL|1|N\r").queries[0]
    assert everything.specimen_ids == [] and everything.extra["all"]
    exact = astm.parse("H|\\^&\rQ|1|P1^S1^R2\rL|1|N\r", {"query_specimen_component": 2})
    assert exact.queries[0].specimen_ids == ["R2"]


def test_delimiters_come_from_the_header():
    msg = astm.parse(samples.ODD_DELIMITERS)
    assert msg.control_id == "MSG7" and msg.sending_application == "ODD-9000"
    assert msg.version == "LIS2-A2" and msg.extra["delimiters"] == "!@#$"
    glu, k = msg.observations
    assert (glu.specimen_id, glu.test_code, glu.test_name) == ("250314007", "GLU", "Glucose")
    assert k.value == "4.4!hemolysed"  # $F$ is an escaped field delimiter
    assert k.flags == "A~H"  # two repeats
    assert msg.extra["orders"][0]["tests"] == ["GLU", "K"]


def test_escapes_in_default_delimiters():
    msg = astm.parse("H|\\^&\rR|1|^^^X|a&F&b&S&c&R&d&E&e|10&S&3/uL|&X41&\rL|1|N\r")
    obs = msg.observations[0]
    assert obs.value == "a|b^c\\d&e" and obs.unit == "10^3/uL" and obs.reference_range == "A"
    raw = astm.parse("H|\\^&\rR|1|^^^X|12^N|10^3/uL\rL|1|N\r").observations[0]
    assert raw.value == "12^N" and raw.unit == "10^3/uL"  # components kept as sent


def test_vietnamese_names_utf8_and_cp1258():
    utf8 = astm.parse(samples.vietnamese().encode("utf-8"))
    assert utf8.extra["patients"][0]["name"] == "Nguyễn^Thị Hoà"
    assert utf8.extra["encoding"] == "utf-8"
    # cp1258 writes the tone marks as combining characters: "ễ" = ê + combining tilde
    legacy = samples.vietnamese("Nguy\u00ea\u0303n^Thi\u0323 Ho\u00e0").encode("cp1258")
    with pytest.raises(UnicodeDecodeError):
        legacy.decode("utf-8")
    msg = astm.parse(legacy)
    assert msg.extra["encoding"] == "cp1258"
    assert msg.extra["patients"][0]["name"] == "Nguyễn^Thị Hoà"  # recomposed (NFC)
    # bytes cp1258 leaves undefined: latin-1, which reads anything
    odd = astm.parse(samples.vietnamese("M\x81ller").encode("latin-1"))
    assert odd.extra["encoding"] == "latin-1" and odd.observations[0].value == "6.1"


def test_crlf_bare_lf_and_framed_captures_are_read():
    crlf = astm.parse(samples.CHEMISTRY.replace("\r", "\r\n"))
    lf = astm.parse(samples.CHEMISTRY.replace("\r", "\n"))
    capture = ENQ + b"".join(_frames(samples.CHEMISTRY, 100)) + EOT
    framed = astm.parse(capture)
    assert len(crlf.observations) == len(lf.observations) == len(framed.observations) == 5
    assert framed.observations[4].value == "41"


def test_several_messages_in_one_transmission():
    two = samples.QC + samples.CHEMISTRY
    msg = astm.parse(two)
    assert msg.extra["messages"] == 2 and len(msg.observations) == 7
    assert [o.qc for o in msg.observations] == [True, True] + [False] * 5
    assert not msg.qc


@pytest.mark.parametrize(
    ("text", "code", "reason"),
    [
        ("P|1\rO|1|S\rR|1|^^^GLU|5\rL|1|N\r", "AR", "no header"),
        ("", "AR", "no header"),
        ("\x00\xff\x13 garbage \x7f", "AR", "no header"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "AR", "no header"),
        ("H\r", "AR", "delimiters"),
        ("H|||\rL|1\r", "AR", "delimiters"),
        ("HA\\^&|x\rL|1\r", "AR", "delimiters"),
        ("H|\\^&|\rR|1|^^^GLU|5\r", "AE", "terminator"),
        ("H|\\^&|\rR|1|^^^A|5\rH|\\^&\rL|1|N\r", "AE", "terminator"),
        ("H|\\\\&\rL|1\r", "AR", "delimiters"),
        ("H|ab&\rL|1\r", "AR", "delimiters"),
    ],
)
def test_refusals(text, code, reason):
    with pytest.raises(MessageError) as e:
        astm.parse(text)
    assert e.value.code == code and reason in e.value.reason


def test_a_cut_message_can_be_read_when_the_dialect_allows():
    msg = astm.parse("H|\\^&\rR|1|^^^GLU|5\r", {"allow_missing_terminator": True})
    assert msg.observations[0].value == "5" and msg.extra["terminated"] is False


def test_timestamps_are_tolerant():
    assert astm.parse_timestamp("20250314") == datetime(2025, 3, 14, tzinfo=VN)
    assert astm.parse_timestamp("202503140930") == datetime(2025, 3, 14, 9, 30, tzinfo=VN)
    assert astm.parse_timestamp("20250314093015.123") == datetime(2025, 3, 14, 9, 30, 15, tzinfo=VN)
    assert astm.parse_timestamp("20250314093015+0000") == datetime(
        2025, 3, 14, 9, 30, 15, tzinfo=UTC
    )
    assert astm.parse_timestamp("2025-03-14 09:30") == datetime(2025, 3, 14, 9, 30, tzinfo=VN)
    for bad in ("", "2025", "20251399", "yesterday", "99999999999999999"):
        assert astm.parse_timestamp(bad) is None
    obs = astm.parse("H|\\^&\rR|1|^^^A|5||||F||||nonsense\rL|1\r").observations[0]
    assert obs.observed_at is None and obs.extra["observed_at_raw"] == "nonsense"


_RECORDISH = st.text(alphabet="HPORCQML|\\^&!@#$\r\n 0123456789.-ABCxyzễ\x02\x03\x17", max_size=300)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=400), st.text(max_size=300), _RECORDISH,
                 _RECORDISH.map(lambda s: "H|\\^&|" + s),
                 _RECORDISH.map(lambda s: "H!@#$!" + s)))  # fmt: skip
def test_parse_raises_only_message_error(text):
    try:
        msg = astm.parse(
            text, {"specimen_component": 1, "test_component": 9, "timezone": "Nowhere/X"}
        )
    except MessageError as e:
        assert e.code in ("AE", "AR")
    else:
        assert msg.protocol == "astm"


# --- building --------------------------------------------------------------------------

NOW = datetime(2025, 3, 14, 10, 0, 5, tzinfo=VN)


def _order(sid="250314001", **kw) -> PendingOrder:
    base = {"tests": [PendingTest("GLU", "Glucose"), PendingTest("URE")],
            "patient_id": "BN0001234", "patient_name": "Nguyễn Văn An",
            "birth_date": date(1980, 5, 12), "sex": "M", "priority": "S",
            "collected_at": datetime(2025, 3, 14, 1, 5, tzinfo=UTC),
            "specimen_type": "serum"}  # fmt: skip
    return PendingOrder(specimen_id=sid, **{**base, **kw})


def test_build_order_message_layout():
    text = astm.build_order_message([_order()], now=NOW)
    records = text.split("\r")
    assert records[0] == "H|\\^&|||BENHAN|||||||P|1|20250314100005"
    assert records[1] == "P|1||BN0001234||Nguyễn^Văn An||19800512|M"
    o = records[2].split("|")
    assert o[:7] == ["O", "1", "250314001", "", "^^^GLU\\^^^URE", "S", ""]
    assert o[7] == "20250314080500"  # O.8 collection time, in the clinic's zone
    assert o[11] == "N" and o[15] == "serum" and o[25] == "Q"
    assert records[3:] == ["L|1|N", ""]
    back = astm.parse(text)
    assert back.extra["orders"][0]["tests"] == ["GLU", "URE"]
    assert back.extra["orders"][0]["specimen_id"] == "250314001"
    assert back.extra["patients"][0]["name"] == "Nguyễn^Văn An"


def test_build_order_message_not_found_and_escaping():
    nothing = astm.build_order_message([_order(found=False)], now=NOW, host_name="LIS")
    assert nothing == "H|\\^&|||LIS|||||||P|1|20250314100005\rL|1|I\r"
    assert astm.build_order_message([], now=NOW).endswith("\rL|1|I\r")
    mixed = astm.build_order_message(
        [_order(), _order("UNKNOWN-1", found=False), _order("NOTHING-2", tests=[])], now=NOW,
        instrument_ids={"250314001": "^1^3"},
    )  # fmt: skip
    orders = astm.parse(mixed).extra["orders"]
    assert [(o["specimen_id"], o["report_type"]) for o in orders] == [
        ("250314001", "Q"), ("UNKNOWN-1", "Y"), ("NOTHING-2", "Y")]  # fmt: skip
    assert orders[0]["instrument_specimen_id"] == "^1^3"
    weird = astm.build_order_message(
        [_order("A|B^C", patient_name="O'Brien & Sons\\x", tests=[PendingTest("X^1")])], now=NOW
    )
    assert "A&F&B&S&C" in weird and "X&S&1" in weird and "O'Brien^&E& Sons&R&x" in weird
    parsed = astm.parse(weird)
    assert parsed.extra["orders"][0]["specimen_id"] == "A|B^C"
    ascii_only = astm.build_order_message([_order(patient_name="Đỗ Thị Ánh")], now=NOW,
                                          ascii_only=True)  # fmt: skip
    assert "P|1||BN0001234||Do^Thi Anh||19800512|M" in ascii_only
    assert ascii_only.isascii()


def test_build_result_message_reads_back():
    text = astm.build_result_message(
        "250314009", [("GLU", "Glucose", "5.6", "mmol/L", "3.9-6.4", ""),
                      ("K", "Potassium", ">10", "mmol/L", "3.5-5.1", "HH")],
        now=NOW, patient_id="BN1", control_id="SIM-1",
    )  # fmt: skip
    msg = astm.parse(text)
    assert msg.control_id == "SIM-1" and msg.sending_application == "BENHAN-SIM"
    assert [(o.specimen_id, o.test_code, o.value, o.flags, o.status) for o in msg.observations] == [
        ("250314009", "GLU", "5.6", "", "F"), ("250314009", "K", ">10", "HH", "F")]  # fmt: skip
    assert msg.observations[0].observed_at == NOW and not msg.qc
    qc = astm.parse(astm.build_result_message("QC1", [("GLU", "", "5", "", "", "")], qc=True))
    assert qc.qc and qc.observations[0].qc


# --- on real sockets -------------------------------------------------------------------

TIMERS = {"receiver_timeout": 0.3, "ack_timeout": 1.0, "enq_retry_delay": 0.05,
          "contention_delay": 0.2, "poll_interval": 0.05}  # fmt: skip
PENDING = {"250314001": _order(), "250314004": _order("250314004", tests=[PendingTest("CRE")])}


class Host:
    """A threaded ASTM listener as the lead's will be: serve_link + parse, answering
    queries with build_order_message."""

    def __init__(self, **options):
        self.options = {**TIMERS, **options}
        self.messages: list = []
        self.raw: list[bytes] = []
        self.errors: list[MessageError] = []
        self.link_counts: list = []
        self.stop = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.05)
        self.address = self.server.getsockname()
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def on_message(self, text: bytes):
        with self.lock:
            self.raw.append(text)
        try:
            msg = astm.parse(text)
        except MessageError as e:
            self.errors.append(e)
            return None
        with self.lock:
            self.messages.append(msg)
        if not msg.queries:
            return None
        ids = [sid for q in msg.queries for sid in q.specimen_ids]
        orders = [PENDING.get(sid) or PendingOrder(sid, [], found=False) for sid in ids]
        return [astm.build_order_message(orders, now=NOW).encode()]

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, conn):
        with conn:
            counts = astm.serve_link(conn, self.on_message, stop=self.stop, **self.options)
        with self.lock:
            self.link_counts.append(counts)

    def wait_links(self, n: int, timeout: float = 5.0):
        """Wait until n connections have ended (the peer closed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.link_counts) >= n:
                    return self.link_counts
            time.sleep(0.01)
        raise AssertionError("links did not end")

    def close(self):
        self.stop.set()
        self.server.close()
        self.acceptor.join(2)
        for t in self.threads:
            t.join(2)
        assert not self.acceptor.is_alive() and not any(t.is_alive() for t in self.threads)


@pytest.fixture
def host():
    h = Host()
    yield h
    h.close()


def test_e2e_results_arrive_and_parse(host):
    sent = send_transmission(host.address, samples.CHEMISTRY, timeout=2)
    assert sent.completed and sent.naks == 0 and set(sent.replies) == {ACK}
    hema = send_transmission(host.address, samples.HEMATOLOGY, frame_size=64, timeout=2)
    assert hema.completed and hema.frames_sent > 23  # long records went out in pieces
    host.wait_links(2)
    chem, blood = host.messages
    assert [o.value for o in chem.observations] == ["5.6", "7.9", "<18", "35", "41"]
    assert len(blood.observations) == 20 and blood.observations[0].specimen_id == "250314002"
    assert host.raw == [samples.CHEMISTRY.encode(), samples.HEMATOLOGY.encode()]


def test_e2e_query_gets_the_orders_back(host):
    result = send_transmission(host.address, samples.QUERY_MANY, timeout=2, wait_answers=1.0)
    assert result.completed
    (answer,) = result.answers
    orders = astm.parse(answer).extra["orders"]
    assert [(o["specimen_id"], o["tests"], o["report_type"]) for o in orders] == [
        ("250314001", ["GLU", "URE"], "Q"), ("250314004", ["CRE"], "Q"), ("250314003", [], "Y"),
    ]  # fmt: skip
    (counts,) = host.wait_links(1)
    assert counts["answers_sent"] == 1


def test_e2e_unknown_specimen_query(host):
    text = samples.QUERY.replace("250314001", "NOPE")
    (answer,) = send_transmission(host.address, text, timeout=2, wait_answers=1.0).answers
    assert answer.endswith(b"\rL|1|I\r")


def test_e2e_faults_bad_checksum_repeat_and_skipped_number(host):
    with socket.create_connection(host.address) as sock:
        bad = send_transmission(sock, samples.CHEMISTRY, corrupt_checksum_frames=(2, 5))
        assert bad.completed and bad.naks == 2
        rep = send_transmission(sock, samples.CHEMISTRY, repeat_frames=(3, 9))
        assert rep.completed and rep.replies.count(ACK) == 1 + 10 + 2
        skip = send_transmission(sock, samples.QC, skip_frame_numbers=(1, 4))
        assert skip.completed and skip.naks == 2
    (counts,) = host.wait_links(1)
    assert host.raw == [samples.CHEMISTRY.encode()] * 2 + [samples.QC.encode()]
    assert [len(m.observations) for m in host.messages] == [5, 5, 2]
    assert counts["bad_checksum"] == 2 and counts["duplicate"] == 2
    assert counts["out_of_order"] == 2 and counts["transmissions"] == 3


def test_e2e_aborted_and_dropped_messages_never_reach_on_message(host):
    aborted = send_transmission(host.address, samples.CHEMISTRY, corrupt_always_frames=(4,))
    assert aborted.aborted and aborted.naks == 6 and aborted.frames_sent == 3 + 6
    dropped = send_transmission(host.address, samples.CHEMISTRY, drop_after_frames=3)
    assert dropped.dropped
    links = host.wait_links(2)
    assert host.raw == [] and host.messages == []
    assert sum(c["discarded"] for c in links) == 2
    ok = send_transmission(host.address, samples.CHEMISTRY)  # the analyzer sends again
    assert ok.completed
    host.wait_links(3)
    assert host.raw == [samples.CHEMISTRY.encode()]


def test_e2e_receiver_timeout_mid_message(host):
    frames = _frames(samples.CHEMISTRY)
    with socket.create_connection(host.address) as sock:
        link = Link(sock)
        link.send(ENQ)
        assert link.reply(1) == ACK
        for f in frames[:3]:
            link.send(f)
            assert link.reply(1) == ACK
        time.sleep(TIMERS["receiver_timeout"] + 0.2)  # the analyzer went quiet
        link.send(frames[3])
        assert link.reply(0.3) == b""  # the host is back in the neutral state
        link.send(EOT)
        again = send_transmission(sock, samples.QC)
        assert again.completed
    (counts,) = host.wait_links(1)
    assert counts["timeout"] == 1 and counts["discarded"] == 1
    assert host.raw == [samples.QC.encode()]


def test_e2e_host_busy_says_nak_and_the_analyzer_retries():
    calls = []

    def busy():
        calls.append(1)
        return len(calls) < 3  # busy for the first two ENQs

    h = Host(busy=busy)
    try:
        result = send_transmission(h.address, samples.QC, enq_retry_delay=0.05)
        assert result.completed and result.enq_attempts == 3
        assert result.replies[:3] == [NAK, NAK, ACK]
        h.wait_links(1)
        assert h.raw == [samples.QC.encode()]
    finally:
        h.close()


def test_e2e_answer_retransmitted_when_the_analyzer_naks(host):
    with socket.create_connection(host.address) as sock:
        assert send_transmission(sock, samples.QUERY).completed
        details = Received()
        answer = receive_transmission(sock, timeout=2, nak_frames=(2, 3), details=details)
    assert details.naks_sent == 2 and len(details.frames) == 4 + 2
    assert astm.parse(answer).extra["orders"][0]["tests"] == ["GLU", "URE"]


def test_e2e_contention_the_host_yields_then_answers(host):
    """The analyzer asks, and starts another transmission just as the host starts its
    answer: both ENQ. The host stays quiet, ACKs the analyzer's next ENQ, takes its
    results, and sends the answer after its contention delay."""
    with socket.create_connection(host.address) as sock:
        assert send_transmission(sock, samples.QUERY).completed
        link = Link(sock)
        assert link.reply(2, ENQ) == ENQ  # the host wants to answer …
        link.send(ENQ)  # … but so do we: contention
        contended = time.monotonic()
        assert link.reply(0.1) == b""  # the host yields: no reply to that ENQ
        time.sleep(0.05)  # the instrument waits ≥ 1 s (shortened here) and insists
        result = send_transmission(sock, samples.QC, timeout=2)
        assert result.completed and result.replies[0] == ACK
        answer = receive_transmission(link, timeout=2)
        assert time.monotonic() - contended >= TIMERS["contention_delay"]
    assert astm.parse(answer).extra["orders"][0]["specimen_id"] == "250314001"
    (counts,) = host.wait_links(1)
    assert counts["contention"] == 1 and counts["answers_sent"] == 1
    assert [bool(m.queries) for m in host.messages] == [True, False]


def test_e2e_many_analyzers_at_once(host):
    errors = []

    def analyzer(n):
        try:
            with socket.create_connection(host.address) as sock:
                for i in range(10):
                    r = send_transmission(sock, samples.chemistry_for(f"S{n:02d}{i:02d}"))
                    assert r.completed
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=analyzer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    host.wait_links(8)
    ids = sorted(m.observations[0].specimen_id for m in host.messages)
    assert ids == sorted(f"S{n:02d}{i:02d}" for n in range(8) for i in range(10))


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="Linux TCP option")
def test_e2e_back_to_back_messages_do_not_wait_for_delayed_acks(host):
    """The sender (like many analyzers) leaves Nagle's algorithm on and sends EOT then the
    next ENQ: without the host acknowledging the EOT at once, each message would wait for
    the kernel's delayed ACK (40 ms): 100 messages ≥ 4 s."""
    started = time.monotonic()
    with socket.create_connection(host.address) as sock:
        for i in range(100):
            assert send_transmission(sock, samples.chemistry_for(f"B{i:03d}")).completed
    assert time.monotonic() - started < 2.0
    host.wait_links(1)
    assert len(host.messages) == 100


def test_e2e_serial_port_through_pyserial():
    """serve_link on a pyserial port (here pyserial's socket:// URL to stand in for a
    COM port): read/write and the port's own timeout, stopped by the stop event."""
    analyzer_side = socket.create_server(("127.0.0.1", 0))
    port = serial.serial_for_url(f"socket://127.0.0.1:{analyzer_side.getsockname()[1]}",
                                 timeout=0.05)  # fmt: skip
    conn, _ = analyzer_side.accept()
    got, stop = [], threading.Event()

    def on_message(text):
        got.append(astm.parse(text))
        return (
            [astm.build_order_message([PENDING["250314001"]], now=NOW)] if got[-1].queries else None
        )

    t = threading.Thread(target=astm.serve_link, args=(port, on_message),
                         kwargs={**TIMERS, "stop": stop}, daemon=True)  # fmt: skip
    t.start()
    try:
        assert send_transmission(conn, samples.CHEMISTRY).completed
        answer = send_transmission(conn, samples.QUERY, wait_answers=1.0).answers
        assert astm.parse(answer[0]).extra["orders"][0]["tests"] == ["GLU", "URE"]
    finally:
        stop.set()
        t.join(2)
        port.close()
        conn.close()
        analyzer_side.close()
    assert not t.is_alive()
    assert [len(m.observations) for m in got] == [5, 0]


def test_on_message_errors_do_not_take_the_link_down():
    a, b = socket.socketpair()
    calls = []

    def on_message(text):
        calls.append(text)
        if len(calls) == 1:
            raise RuntimeError("database down")

    t = threading.Thread(target=lambda: calls.append(astm.serve_link(a, on_message, **TIMERS)))
    t.start()
    try:
        assert send_transmission(b, samples.QC).completed
        assert send_transmission(b, samples.QC).completed
    finally:
        b.close()
        t.join(2)
        a.close()
    assert calls[:2] == [samples.QC.encode()] * 2 and calls[2]["on_message_errors"] == 1
