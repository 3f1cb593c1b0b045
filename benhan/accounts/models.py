"""The facility, its departments and its staff."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import IntegrityError, models, transaction
from django.db.models import F
from django.utils.translation import gettext_lazy as _


class Facility(models.Model):
    """A health facility. Every clinical row belongs to one."""

    code = models.CharField(_("facility code"), max_length=5, unique=True)
    name = models.CharField(_("name"), max_length=200)
    address = models.CharField(_("address"), max_length=300, blank=True)
    province_code = models.CharField(_("province code"), max_length=2, blank=True)
    phone = models.CharField(_("phone"), max_length=20, blank=True)

    class Meta:
        verbose_name = _("facility")
        verbose_name_plural = _("facilities")

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class Counter(models.Model):
    """A named sequence per facility (medical record numbers, later record numbers).

    next_value() increments with a single UPDATE, which takes a row lock on
    PostgreSQL and the write lock on SQLite, so concurrent callers never get the
    same number.
    """

    facility = models.ForeignKey(Facility, on_delete=models.PROTECT)
    name = models.CharField(max_length=40)
    value = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["facility", "name"], name="counter_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.name}={self.value}"

    @classmethod
    def next_value(cls, facility: Facility, name: str) -> int:
        with transaction.atomic():
            updated = cls.objects.filter(facility=facility, name=name).update(value=F("value") + 1)
            if not updated:
                # First use. A concurrent first use loses the unique-constraint race,
                # so retry the increment in a savepoint.
                try:
                    with transaction.atomic():
                        cls.objects.create(facility=facility, name=name, value=1)
                        return 1
                except IntegrityError:
                    cls.objects.filter(facility=facility, name=name).update(value=F("value") + 1)
            return cls.objects.get(facility=facility, name=name).value


class Department(models.Model):
    """A khoa or phòng."""

    class Kind(models.TextChoices):
        CLINICAL = "clinical", _("Clinical")
        PARACLINICAL = "paraclinical", _("Laboratory / imaging")
        ADMINISTRATIVE = "administrative", _("Administrative")

    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="departments")
    code = models.CharField(_("code"), max_length=20)
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind, default=Kind.CLINICAL)
    has_beds = models.BooleanField(_("admits inpatients"), default=False)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("department")
        verbose_name_plural = _("departments")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["facility", "code"], name="department_unique_code")
        ]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    DOCTOR = "doctor", _("Doctor")
    NURSE = "nurse", _("Nurse")
    LAB_TECH = "lab_tech", _("Laboratory technician")
    RECORDS_OFFICER = "records_officer", _("Records officer")
    RECEPTIONIST = "receptionist", _("Receptionist")
    ADMIN = "admin", _("Administrator")


CLINICAL_ROLES = frozenset({Role.DOCTOR, Role.NURSE, Role.LAB_TECH})

# Apps whose models the Django admin shows: configuration, never clinical data.
CONFIG_APPS = frozenset({"accounts", "axes", "otp_totp", "encounters", "records", "signing", "lab"})


class StaffManager(UserManager):
    def get_queryset(self):
        return super().get_queryset().select_related("facility")

    def create_superuser(self, username, email=None, password=None, **extra_fields):
        # The first account of a new installation configures it: an administrator.
        extra_fields.setdefault("role", Role.ADMIN)
        return super().create_superuser(username, email, password, **extra_fields)


class User(AbstractUser):
    """A staff member. Their role and departments decide what they may see."""

    first_name = None
    last_name = None
    full_name = models.CharField(_("full name"), max_length=100)
    facility = models.ForeignKey(
        Facility, on_delete=models.PROTECT, null=True, blank=True, related_name="staff"
    )
    role = models.CharField(_("role"), max_length=20, choices=Role, default=Role.NURSE)
    title = models.CharField(
        _("title"), max_length=40, blank=True, help_text=_("e.g. BSCKI, ThS.BS")
    )
    practising_certificate = models.CharField(
        _("practising certificate number"), max_length=40, blank=True
    )
    departments = models.ManyToManyField(
        Department, blank=True, related_name="members", verbose_name=_("departments")
    )

    objects = StaffManager()
    REQUIRED_FIELDS = ["full_name"]

    class Meta:
        verbose_name = _("staff member")
        verbose_name_plural = _("staff")

    def __str__(self) -> str:
        return self.full_name or self.username

    def save(self, *args, **kwargs) -> None:
        # Administrators configure the clinic in the admin pages; nobody else uses them.
        self.is_staff = self.role == Role.ADMIN or self.is_superuser
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "role" in update_fields:
            kwargs["update_fields"] = {*update_fields, "is_staff"}
        super().save(*args, **kwargs)

    def has_perm(self, perm: str, obj=None) -> bool:
        """Administrators may change every configuration model, and nothing else."""
        if self.is_active and self.role == Role.ADMIN and perm.split(".", 1)[0] in CONFIG_APPS:
            return True
        return super().has_perm(perm, obj)

    def has_module_perms(self, app_label: str) -> bool:
        if self.is_active and self.role == Role.ADMIN and app_label in CONFIG_APPS:
            return True
        return super().has_module_perms(app_label)

    def get_full_name(self) -> str:
        return self.full_name

    def get_short_name(self) -> str:
        return self.full_name.rsplit(" ", 1)[-1] if self.full_name else self.username

    @property
    def is_clinical(self) -> bool:
        return self.role in CLINICAL_ROLES

    def department_ids(self) -> set[int]:
        """Cached per request object: access checks ask many times."""
        cached = getattr(self, "_department_ids", None)
        if cached is None:
            cached = set(self.departments.values_list("id", flat=True))
            self._department_ids = cached
        return cached
