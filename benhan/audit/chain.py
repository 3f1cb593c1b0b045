"""Appending to and verifying the hash-chained audit log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from benhan.audit.models import GENESIS_HASH, AuditEvent, AuditHead


def _plain(detail: dict[str, Any] | None) -> dict[str, Any]:
    """Round-trip through JSON so the hashed value equals what the database returns."""
    return json.loads(json.dumps(detail or {}, cls=DjangoJSONEncoder))


def append(
    *,
    action: str,
    actor=None,
    facility_id: int | None = None,
    object_type: str = "",
    object_id: str | int = "",
    patient_id: int | None = None,
    ip: str | None = None,
    reason: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Write one event at the end of the chain, inside the caller's transaction."""
    with transaction.atomic():
        head, _ = AuditHead.objects.select_for_update().get_or_create(pk=1)
        event = AuditEvent(
            seq=head.seq + 1,
            created_at=timezone.now(),
            facility_id=facility_id,
            actor=actor,
            actor_label=actor.get_username() if actor is not None else "",
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            patient_id=patient_id,
            ip=ip,
            reason=reason,
            detail=_plain(detail),
            prev_hash=head.hash,
        )
        event.hash = event.compute_hash()
        event.save(force_insert=True)
        head.seq = event.seq
        head.hash = event.hash
        head.save(update_fields=["seq", "hash"])
    return event


@dataclass(frozen=True)
class Actor:
    """Who does a write, and from where: what an action needs for its audit event."""

    user: Any
    ip: str | None = None

    @classmethod
    def from_request(cls, request) -> Actor:
        # REMOTE_ADDR only: behind a proxy, the proxy sets it (see docs/deployment.md).
        return cls(request.user, request.META.get("REMOTE_ADDR") or None)


def record(
    actor: Actor,
    action: str,
    *,
    obj: Any = None,
    patient: Any = None,
    reason: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Write the audit event for something `actor` did."""
    user = actor.user if getattr(actor.user, "is_authenticated", False) else None
    return append(
        action=action,
        actor=user,
        facility_id=getattr(user, "facility_id", None),
        object_type=obj._meta.model_name if obj is not None else "",
        object_id=obj.pk if obj is not None else "",
        patient_id=patient.pk if patient is not None else None,
        ip=actor.ip,
        reason=reason,
        detail=detail,
    )


@dataclass
class Problem:
    seq: int | None
    message: str

    def __str__(self) -> str:
        where = f"event {self.seq}" if self.seq is not None else "chain end"
        return f"{where}: {self.message}"


def verify(progress=None) -> tuple[int, list[Problem]]:
    """Walk the whole chain. Returns (events checked, problems found).

    A changed event fails its own hash; an inserted or reordered event breaks the
    link to its predecessor; a deleted event leaves a gap in the sequence numbers,
    or, at the end, disagrees with the chain head.
    """
    problems: list[Problem] = []
    expected_seq = 1
    prev_hash = GENESIS_HASH
    count = 0
    for event in _events():
        count += 1
        if progress and count % 10000 == 0:
            progress(count)
        if event.seq > expected_seq:
            missing = (
                str(expected_seq)
                if event.seq == expected_seq + 1
                else f"{expected_seq}–{event.seq - 1}"
            )
            problems.append(Problem(event.seq, f"events {missing} are missing (deleted)"))
        elif event.seq < expected_seq:
            problems.append(Problem(event.seq, "sequence number repeats or goes back (inserted)"))
        if event.prev_hash != prev_hash:
            problems.append(
                Problem(
                    event.seq,
                    "does not link to the previous event (inserted, deleted or reordered)",
                )
            )
        if event.compute_hash() != event.hash:
            problems.append(Problem(event.seq, "content does not match its hash (changed)"))
        prev_hash = event.hash
        expected_seq = event.seq + 1
    head = AuditHead.objects.filter(pk=1).first()
    head_seq = head.seq if head else 0
    head_hash = head.hash if head else GENESIS_HASH
    if head_seq != expected_seq - 1 or head_hash != prev_hash:
        last = expected_seq - 1
        if head_seq > last:
            problems.append(
                Problem(
                    None,
                    f"the chain head records event {head_seq}, the last present is {last} "
                    "(events deleted from the end)",
                )
            )
        else:
            problems.append(
                Problem(None, f"the last event ({last}) does not match the chain head ({head_seq})")
            )
    return count, problems


def _events() -> Iterator[AuditEvent]:
    return AuditEvent.objects.order_by("seq").iterator(chunk_size=5000)
