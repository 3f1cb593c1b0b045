"""Encounters (visits, admissions, emergencies), department stays and diagnoses."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from benhan.lib.vntext import search_key


class Icd10Code(models.Model):
    """One WHO ICD-10 code, with the Ministry of Health's Vietnamese title when imported."""

    code = models.CharField(max_length=8, primary_key=True)
    title_en = models.CharField(max_length=300)
    title_vi = models.CharField(max_length=300, blank=True)
    chapter = models.CharField(max_length=5, blank=True)
    # Unaccented lowercase of both titles, with the code, for search.
    search_key = models.CharField(max_length=620, editable=False)

    class Meta:
        verbose_name = _("ICD-10 code")
        verbose_name_plural = _("ICD-10 codes")
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.title}"

    def save(self, *args, **kwargs) -> None:
        self.search_key = search_key(f"{self.code} {self.title_vi} {self.title_en}")
        super().save(*args, **kwargs)

    @property
    def title(self) -> str:
        if self.title_vi and (get_language() or "vi").startswith("vi"):
            return self.title_vi
        return self.title_en


class EncounterKind(models.TextChoices):
    OUTPATIENT = "outpatient", _("Outpatient visit")
    INPATIENT = "inpatient", _("Inpatient admission")
    EMERGENCY = "emergency", _("Emergency")


class EncounterStatus(models.TextChoices):
    OPEN = "open", _("In progress")
    FINISHED = "finished", _("Finished")


class DischargeOutcome(models.TextChoices):
    """Treatment result, coded as in the insurance data tables (QĐ 130, KET_QUA_DTRI)."""

    CURED = "1", _("Cured")
    IMPROVED = "2", _("Improved")
    UNCHANGED = "3", _("Unchanged")
    WORSE = "4", _("Worse")
    DIED = "5", _("Died")
    GRAVE = "6", _("Grave prognosis, taken home")
    UNKNOWN = "7", _("Not determined")


class DischargeType(models.TextChoices):
    """How the patient left, coded as in the insurance data tables (QĐ 130, MA_LOAI_RV)."""

    DISCHARGED = "1", _("Discharged")
    REFERRED = "2", _("Transferred to another facility")
    ABSCONDED = "3", _("Left without permission")
    ON_REQUEST = "4", _("Left at own request")
    OTHER = "5", _("Other")


class Encounter(models.Model):
    facility = models.ForeignKey("accounts.Facility", on_delete=models.PROTECT)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="encounters"
    )
    kind = models.CharField(_("kind"), max_length=12, choices=EncounterKind)
    status = models.CharField(
        _("status"), max_length=10, choices=EncounterStatus, default=EncounterStatus.OPEN
    )
    # The department the patient is in now (or was in at the end).
    department = models.ForeignKey(
        "accounts.Department",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("department"),
    )
    attending = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("attending"),
    )
    started_at = models.DateTimeField(_("started"))
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    reason = models.CharField(_("reason for visit"), max_length=500)
    # An admission opened from an outpatient or emergency visit.
    source = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    discharge_outcome = models.CharField(
        _("outcome"), max_length=1, choices=DischargeOutcome, blank=True
    )
    discharge_type = models.CharField(
        _("discharge type"), max_length=1, choices=DischargeType, blank=True
    )
    discharge_note = models.TextField(_("discharge note"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        verbose_name = _("encounter")
        verbose_name_plural = _("encounters")
        indexes = [
            models.Index(fields=["department", "status", "kind"], name="encounter_worklist"),
            models.Index(fields=["department", "started_at"], name="encounter_dept_started"),
            models.Index(fields=["patient", "-started_at"], name="encounter_patient"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.started_at:%d/%m/%Y}"

    @property
    def is_open(self) -> bool:
        return self.status == EncounterStatus.OPEN

    def active_diagnoses(self) -> list[Diagnosis]:
        return [d for d in self.diagnoses.all() if d.retired_at is None]

    @property
    def main_diagnosis(self) -> Diagnosis | None:
        return next((d for d in self.active_diagnoses() if d.is_main), None)

    @property
    def secondary_diagnoses(self) -> list[Diagnosis]:
        return [d for d in self.active_diagnoses() if not d.is_main]


class Stay(models.Model):
    """A period of an encounter spent in one department. Transfers close one, open the next."""

    encounter = models.ForeignKey(Encounter, on_delete=models.PROTECT, related_name="stays")
    department = models.ForeignKey(
        "accounts.Department", on_delete=models.PROTECT, related_name="stays"
    )
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    attending = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["started_at", "id"]
        indexes = [models.Index(fields=["department", "encounter"], name="stay_department")]

    def __str__(self) -> str:
        return f"{self.department} from {self.started_at:%Y-%m-%d %H:%M}"


class Diagnosis(models.Model):
    """A coded diagnosis. Replaced diagnoses are retired, never deleted."""

    encounter = models.ForeignKey(Encounter, on_delete=models.PROTECT, related_name="diagnoses")
    code = models.ForeignKey(Icd10Code, on_delete=models.PROTECT, related_name="+")
    is_main = models.BooleanField(default=False)
    recorded_at = models.DateTimeField()
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    retired_at = models.DateTimeField(null=True, blank=True)
    retired_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["-is_main", "recorded_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["encounter"],
                condition=Q(is_main=True, retired_at__isnull=True),
                name="diagnosis_one_main",
            )
        ]

    def __str__(self) -> str:
        return f"{self.code_id}{' (main)' if self.is_main else ''}"
