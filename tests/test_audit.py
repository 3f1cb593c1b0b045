"""The hash-chained audit log: verification finds every kind of tampering, and the
viewer answers "who looked at this patient" and "what did this person do"."""

from __future__ import annotations

from io import StringIO
from itertools import pairwise

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from benhan.audit import chain
from benhan.audit.models import AuditEvent, AuditHead


@pytest.fixture
def history(patient, encounter, doctor, nurse, receptionist, outsider_doctor, client_for):
    """A day's events: registration, admission, views by the care team, a refused
    outsider who breaks the glass, an identity edit."""
    client_for(doctor).get(reverse("patients:detail", args=[patient.pk]))
    client_for(nurse).get(reverse("encounters:detail", args=[encounter.pk]))
    outsider = client_for(outsider_doctor)
    outsider.post(
        reverse("patients:break_glass", args=[patient.pk]),
        {"reason": "Hội chẩn cấp cứu ngoại khoa"},
    )
    outsider.get(reverse("patients:detail", args=[patient.pk]))
    client_for(receptionist).get(reverse("patients:search"), {"q": "nguyen"})
    events = list(AuditEvent.objects.order_by("seq"))
    assert len(events) >= 7
    return events


def verify() -> str:
    """Run `benhan audit verify`; return its output (raises CommandError when broken)."""
    out = StringIO()
    call_command("audit", "verify", stdout=out)
    return out.getvalue()


def broken() -> str:
    out = StringIO()
    with pytest.raises(CommandError, match=r"audit chain broken: \d+ problem"):
        call_command("audit", "verify", stdout=out)
    return out.getvalue()


def test_it_verifies_an_intact_chain(history):
    """Every event links to the one before it, and the head to the last."""
    assert verify() == f"OK: {len(history)} events, chain intact\n"
    seqs = [e.seq for e in history]
    assert seqs == list(range(1, len(history) + 1))
    assert history[0].prev_hash == "0" * 64
    for before, after in pairwise(history):
        assert after.prev_hash == before.hash
    head = AuditHead.objects.get()
    assert (head.seq, head.hash) == (history[-1].seq, history[-1].hash)


def test_it_verifies_an_empty_log(db):
    assert verify() == "OK: 0 events, chain intact\n"


@pytest.mark.parametrize(
    "change",
    [
        {"detail": {"mrn": "26999999"}},
        {"reason": "không có gì"},
        {"action": "patient.search"},
        {"ip": "10.0.0.66"},
        {"actor_label": "someone_else"},
        {"created_at": timezone.now()},
    ],
    ids=lambda c: next(iter(c)),
)
def test_it_finds_a_changed_event(change, history):
    """Any field changed in place breaks that event's hash: reported with its seq."""
    AuditEvent.objects.filter(seq=3).update(**change)
    out = broken()
    assert "BROKEN event 3: content does not match its hash (changed)" in out
    assert out.count("BROKEN") == 1


def test_it_finds_a_change_made_with_raw_sql(history):
    """Also when someone bypasses Django entirely."""
    table = AuditEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET reason = %s WHERE seq = %s", ["đã sửa", 5])  # noqa: S608
    assert "BROKEN event 5: content does not match its hash" in broken()


def test_it_finds_a_change_that_recomputes_the_hash(history):
    """Recomputing the changed event's own hash breaks the next event's link instead."""
    event = AuditEvent.objects.get(seq=3)
    event.reason = "che giấu"
    event.hash = event.compute_hash()
    AuditEvent.objects.filter(seq=3).update(reason=event.reason, hash=event.hash)
    out = broken()
    assert "BROKEN event 4: does not link to the previous event" in out
    assert "event 3" not in out


def test_it_finds_a_deleted_middle_event(history):
    """A gap in the sequence, and the next event's link to a missing predecessor."""
    AuditEvent.objects.filter(seq=4).delete()
    out = broken()
    assert "BROKEN event 5: events 4 are missing (deleted)" in out
    assert "BROKEN event 5: does not link to the previous event" in out


def test_it_finds_several_deleted_events(history):
    AuditEvent.objects.filter(seq__in=[2, 3, 4]).delete()
    assert "BROKEN event 5: events 2–4 are missing (deleted)" in broken()


def test_it_finds_a_deleted_first_event(history):
    AuditEvent.objects.filter(seq=1).delete()
    assert "BROKEN event 2: events 1 are missing (deleted)" in broken()


def test_it_finds_a_deleted_last_event(history):
    """The chain head remembers how far the log went."""
    last = history[-1].seq
    AuditEvent.objects.filter(seq=last).delete()
    out = broken()
    assert (
        f"BROKEN chain end: the chain head records event {last}, the last present is {last - 1}"
        in out
    )


def test_it_finds_a_forged_event_appended_at_the_end(history, doctor):
    """A well-made forgery (correct link, correct hash) still disagrees with the head."""
    last = history[-1]
    forged = AuditEvent(
        seq=last.seq + 1,
        created_at=timezone.now(),
        facility_id=doctor.facility_id,
        actor=doctor,
        actor_label=doctor.username,
        action="patient.view",
        detail={},
        prev_hash=last.hash,
    )
    forged.hash = forged.compute_hash()
    forged.save(force_insert=True)
    out = broken()
    assert (
        f"BROKEN chain end: the last event ({last.seq + 1}) does not match the chain head "
        f"({last.seq})" in out
    )


def test_it_finds_a_forged_event_with_a_bad_hash(history, doctor):
    last = history[-1]
    AuditEvent.objects.create(
        seq=last.seq + 1,
        created_at=timezone.now(),
        actor=doctor,
        action="patient.view",
        prev_hash=last.hash,
        hash="f" * 64,
    )
    out = broken()
    assert f"BROKEN event {last.seq + 1}: content does not match its hash (changed)" in out


def test_it_finds_a_forged_event_inserted_in_a_gap(history, doctor):
    """An event slipped in under a renumbered sequence breaks the links around it."""
    AuditEvent.objects.filter(seq=4).delete()
    AuditEvent.objects.create(
        seq=4,
        created_at=timezone.now(),
        actor=doctor,
        action="patient.view",
        prev_hash="a" * 64,
        hash="b" * 64,
    )
    out = broken()
    assert "BROKEN event 4: does not link to the previous event" in out
    assert "BROKEN event 5: does not link to the previous event" in out


def test_it_keeps_appending_after_verification(history, doctor):
    """Verification reads only; the next event links to the head."""
    verify()
    event = chain.record(chain.Actor(doctor, "127.0.0.1"), "worklist.view")
    assert event.seq == history[-1].seq + 1
    assert event.prev_hash == history[-1].hash
    verify()


# --- The viewer -----------------------------------------------------------------------------


@pytest.fixture
def auditor(admin, client_for):
    return client_for(admin)


def listed(response) -> list[AuditEvent]:
    assert response.status_code == 200
    return list(response.context["page"].object_list)


def test_it_lists_who_looked_at_a_patient(history, patient, auditor, doctor, outsider_doctor):
    """Filtering by MRN lists every event about the patient, the break-the-glass with
    its reason, and nothing about anyone else."""
    events = listed(auditor.get(reverse("audit:events"), {"mrn": patient.mrn}))
    assert events
    assert {e.patient_id for e in events} == {patient.pk}
    actors = {e.actor for e in events}
    assert {doctor, outsider_doctor} <= actors
    assert [e.seq for e in events] == sorted((e.seq for e in events), reverse=True)
    glass = next(e for e in events if e.action == "breakglass")
    assert glass.reason == "Hội chẩn cấp cứu ngoại khoa"
    html = auditor.get(reverse("audit:events"), {"mrn": patient.mrn}).content.decode()
    assert "Hội chẩn cấp cứu ngoại khoa" in html


def test_it_lists_what_one_person_did(history, auditor, outsider_doctor, patient):
    events = listed(auditor.get(reverse("audit:events"), {"user": "outsider_doctor"}))
    assert {e.actor for e in events} == {outsider_doctor}
    assert {e.action for e in events} == {"breakglass", "patient.view"}


def test_it_combines_filters(history, auditor, patient, doctor):
    r = auditor.get(reverse("audit:events"), {"mrn": patient.mrn, "user": "doctor"})
    events = listed(r)
    assert events
    assert all(e.actor == doctor and e.patient == patient for e in events)
    events = listed(auditor.get(reverse("audit:events"), {"action": "patient.view"}))
    assert {e.action for e in events} == {"patient.view"}


def test_it_lists_nothing_for_unknown_filters(history, auditor):
    assert listed(auditor.get(reverse("audit:events"), {"mrn": "99999999"})) == []
    assert listed(auditor.get(reverse("audit:events"), {"user": "nobody"})) == []


def test_it_keeps_other_facilities_out_of_the_viewer(history, other_patient, auditor, admin):
    """The other facility's events are neither listed nor reachable by MRN or username
    (MRNs restart at each facility, so the same number may name a local patient)."""
    events = listed(auditor.get(reverse("audit:events")))
    assert other_patient.pk not in {e.patient_id for e in events}
    assert {e.facility_id for e in events} == {admin.facility_id}
    by_mrn = listed(auditor.get(reverse("audit:events"), {"mrn": other_patient.mrn}))
    assert all(e.patient.facility_id == admin.facility_id for e in by_mrn)
    assert listed(auditor.get(reverse("audit:events"), {"user": "other_facility_doctor"})) == []


def test_it_audits_reading_the_audit_log(history, auditor, admin, patient):
    auditor.get(reverse("audit:events"), {"mrn": patient.mrn})
    event = AuditEvent.objects.filter(action="audit.view").latest("seq")
    assert event.actor == admin
    assert event.detail == {"mrn": patient.mrn, "user": "", "action": ""}
