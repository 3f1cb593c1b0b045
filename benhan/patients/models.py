"""The patient registry."""

from __future__ import annotations

from datetime import date

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from benhan.lib.regions import PROVINCES
from benhan.lib.vntext import search_key


class Sex(models.TextChoices):
    MALE = "M", _("Male")
    FEMALE = "F", _("Female")


class Patient(models.Model):
    facility = models.ForeignKey("accounts.Facility", on_delete=models.PROTECT)
    mrn = models.CharField(_("medical record number"), max_length=20)
    full_name = models.CharField(_("full name"), max_length=100)
    # Lowercase, unaccented, leading space: see benhan.lib.vntext.search_key.
    name_key = models.CharField(max_length=110, editable=False)
    birth_year = models.PositiveSmallIntegerField(_("year of birth"))
    # Null when only the year is known (common for older patients).
    birth_date = models.DateField(_("date of birth"), null=True, blank=True)
    sex = models.CharField(_("sex"), max_length=1, choices=Sex)
    # NULL, not "", when absent: the per-facility unique constraint must ignore it.
    cccd = models.CharField(_("citizen ID (CCCD)"), max_length=12, null=True, blank=True)  # noqa: DJ001
    insurance_number = models.CharField(_("health-insurance card"), max_length=15, blank=True)
    # The last 10 digits: the lifelong social-insurance number, what staff type.
    insurance_key = models.CharField(max_length=10, blank=True, editable=False)
    insurance_valid_from = models.DateField(_("card valid from"), null=True, blank=True)
    insurance_valid_to = models.DateField(_("card valid to"), null=True, blank=True)
    insurance_facility_code = models.CharField(
        _("registered primary-care facility"), max_length=5, blank=True
    )
    phone = models.CharField(_("phone"), max_length=11, blank=True)
    address = models.CharField(_("address (house, street, village)"), max_length=200, blank=True)
    province_code = models.CharField(_("province"), max_length=2, blank=True)
    commune_code = models.CharField(_("commune code"), max_length=5, blank=True)
    ethnicity = models.CharField(_("ethnicity"), max_length=40, blank=True)
    occupation = models.CharField(_("occupation"), max_length=100, blank=True)
    emergency_name = models.CharField(_("emergency contact"), max_length=100, blank=True)
    emergency_relation = models.CharField(_("relationship"), max_length=40, blank=True)
    emergency_phone = models.CharField(_("emergency contact phone"), max_length=11, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("patient")
        verbose_name_plural = _("patients")
        constraints = [
            models.UniqueConstraint(fields=["facility", "mrn"], name="patient_unique_mrn"),
            models.UniqueConstraint(fields=["facility", "cccd"], name="patient_unique_cccd"),
        ]
        indexes = [
            models.Index(fields=["facility", "name_key"], name="patient_name_key"),
            models.Index(fields=["facility", "phone"], name="patient_phone"),
            models.Index(fields=["facility", "insurance_key"], name="patient_insurance"),
            models.Index(fields=["facility", "birth_year"], name="patient_birth_year"),
        ]

    def __str__(self) -> str:
        return f"{self.full_name} ({self.mrn})"

    def save(self, *args, **kwargs) -> None:
        self.name_key = search_key(self.full_name)
        self.insurance_key = self.insurance_number[-10:] if self.insurance_number else ""
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            extra = {"name_key"} if "full_name" in update_fields else set()
            if "insurance_number" in update_fields:
                extra.add("insurance_key")
            kwargs["update_fields"] = set(update_fields) | extra
        super().save(*args, **kwargs)

    @property
    def birth_display(self) -> str:
        if self.birth_date:
            return self.birth_date.strftime("%d/%m/%Y")
        return str(self.birth_year)

    def age(self, on: date | None = None) -> int:
        on = on or timezone.localdate()
        if self.birth_date:
            b = self.birth_date
            return on.year - b.year - ((on.month, on.day) < (b.month, b.day))
        return on.year - self.birth_year

    @property
    def province_name(self) -> str:
        return PROVINCES.get(self.province_code, "")

    def insurance_valid_on(self, day: date) -> bool | None:
        if not self.insurance_number:
            return None
        if self.insurance_valid_from and day < self.insurance_valid_from:
            return False
        return not (self.insurance_valid_to and day > self.insurance_valid_to)
