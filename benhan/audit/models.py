"""Audit events, hash-chained, and break-the-glass grants."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

GENESIS_HASH = "0" * 64


class AuditEvent(models.Model):
    """One thing a person did to or with patient data.

    Each event stores the hash of the previous one, so changing, inserting or
    deleting an event breaks the chain (see benhan.audit.chain.verify).
    Never updated or deleted by the application.
    """

    seq = models.BigIntegerField(unique=True)
    created_at = models.DateTimeField(db_index=True)
    facility = models.ForeignKey(
        "accounts.Facility", on_delete=models.PROTECT, null=True, blank=True
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True
    )
    actor_label = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=60, db_index=True)
    object_type = models.CharField(max_length=40, blank=True)
    object_id = models.CharField(max_length=40, blank=True)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    reason = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["-seq"]
        indexes = [
            models.Index(fields=["patient", "-seq"], name="audit_patient_seq"),
            models.Index(fields=["actor", "-seq"], name="audit_actor_seq"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action}"

    def canonical(self) -> bytes:
        """The fields the hash covers, in a fixed serialisation."""
        fields = [
            self.seq,
            self.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
            self.facility_id,
            self.actor_id,
            self.actor_label,
            self.action,
            self.object_type,
            self.object_id,
            self.patient_id,
            self.ip,
            self.reason,
            self.detail,
        ]
        return json.dumps(
            fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"), cls=DjangoJSONEncoder
        ).encode()

    def compute_hash(self) -> str:
        return hashlib.sha256(self.prev_hash.encode() + self.canonical()).hexdigest()


class AuditHead(models.Model):
    """The end of the chain: the last sequence number and hash.

    Appending locks this single row, which serialises writers on PostgreSQL; it also
    lets verification notice events deleted from the end of the chain.
    """

    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default=GENESIS_HASH)

    def __str__(self) -> str:
        return f"head #{self.seq}"


class BreakGlassGrant(models.Model):
    """Temporary access to a patient outside the staff member's departments."""

    facility = models.ForeignKey("accounts.Facility", on_delete=models.PROTECT)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT)
    reason = models.TextField()
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["user", "patient", "expires_at"], name="breakglass_lookup")]

    def __str__(self) -> str:
        return f"{self.user} → {self.patient} until {self.expires_at:%Y-%m-%d %H:%M}"
