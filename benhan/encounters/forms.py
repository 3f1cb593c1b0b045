from __future__ import annotations

import re

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from benhan.accounts.models import Department, Role, User
from benhan.encounters.models import DischargeOutcome, DischargeType, EncounterKind, Icd10Code

_DT_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%d/%m/%Y %H:%M"]


class DateTimeField(forms.DateTimeField):
    """A datetime-local input; the value is read in the clinic's time zone."""

    input_formats = _DT_FORMATS
    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


def _now_local():
    return timezone.localtime().replace(second=0, microsecond=0)


class StaffChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: User) -> str:
        return f"{obj.title} {obj.full_name}".strip()


def doctors(facility_id: int):
    return User.objects.filter(facility_id=facility_id, role=Role.DOCTOR, is_active=True).order_by(
        "full_name"
    )


class OpenEncounterForm(forms.Form):
    kind = forms.ChoiceField(label=_("Kind"), choices=EncounterKind.choices)
    department = forms.ModelChoiceField(label=_("Department"), queryset=Department.objects.none())
    attending = StaffChoiceField(
        label=_("Attending doctor"), queryset=User.objects.none(), required=False
    )
    reason = forms.CharField(
        label=_("Reason for visit / admission"),
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    started_at = DateTimeField(label=_("Start time"))

    def __init__(self, *args, facility_id: int, departments=None, kinds=None, **kwargs):
        super().__init__(*args, **kwargs)
        depts = Department.objects.filter(facility_id=facility_id, is_active=True).exclude(
            kind=Department.Kind.ADMINISTRATIVE
        )
        if departments is not None:
            depts = depts.filter(pk__in=departments)
        self.fields["department"].queryset = depts
        self.fields["attending"].queryset = doctors(facility_id)
        if kinds is not None:
            self.fields["kind"].choices = [c for c in EncounterKind.choices if c[0] in kinds]
        self.fields["started_at"].initial = _now_local

    def clean(self):
        data = super().clean()
        dept = data.get("department")
        if data.get("kind") == EncounterKind.INPATIENT and dept and not dept.has_beds:
            self.add_error("department", _("This department does not admit inpatients."))
        return data


class TransferForm(forms.Form):
    department = forms.ModelChoiceField(
        label=_("To department"), queryset=Department.objects.none()
    )
    attending = StaffChoiceField(
        label=_("Attending doctor"), queryset=User.objects.none(), required=False
    )
    at = DateTimeField(label=_("Transfer time"))
    note = forms.CharField(label=_("Note"), max_length=500, required=False)

    def __init__(self, *args, encounter, **kwargs):
        super().__init__(*args, **kwargs)
        depts = (
            Department.objects.filter(
                facility_id=encounter.facility_id,
                is_active=True,
            )
            .exclude(pk=encounter.department_id)
            .exclude(kind=Department.Kind.ADMINISTRATIVE)
        )
        if encounter.kind == EncounterKind.INPATIENT:
            depts = depts.filter(has_beds=True)
        self.fields["department"].queryset = depts
        self.fields["attending"].queryset = doctors(encounter.facility_id)
        self.fields["at"].initial = _now_local


class DischargeForm(forms.Form):
    ended_at = DateTimeField(label=_("Discharge time"))
    outcome = forms.ChoiceField(label=_("Treatment outcome"), choices=DischargeOutcome.choices)
    discharge_type = forms.ChoiceField(label=_("Discharge type"), choices=DischargeType.choices)
    note = forms.CharField(
        label=_("Note"), max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 3})
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["ended_at"].initial = _now_local


_CODE = re.compile(r"^[A-Z]\d{2}(\.\d{1,2})?$")


def normalise_code(raw: str) -> str:
    """'e119' or 'E11.9' -> 'E11.9'."""
    code = raw.strip().upper().replace(",", ".")
    if re.fullmatch(r"[A-Z]\d{3,4}", code):
        code = f"{code[:3]}.{code[3:]}"
    return code


def lookup_codes(raws: list[str]) -> list[Icd10Code]:
    codes = [normalise_code(r) for r in raws if r.strip()]
    bad = [c for c in codes if not _CODE.match(c)]
    found = {c.code: c for c in Icd10Code.objects.filter(code__in=codes)}
    unknown = [c for c in codes if c not in found and c not in bad]
    if bad or unknown:
        raise ValidationError(
            _("Not in the ICD-10 list: %(codes)s") % {"codes": ", ".join(bad + unknown)}
        )
    return [found[c] for c in dict.fromkeys(codes)]


class DiagnosisForm(forms.Form):
    main = forms.CharField(
        label=_("Main diagnosis (ICD-10)"),
        max_length=8,
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "E11.9"}),
    )
    secondary = forms.CharField(
        label=_("Secondary diagnoses (ICD-10 codes, separated by commas)"),
        max_length=200,
        required=False,
    )

    def clean_main(self) -> Icd10Code:
        return lookup_codes([self.cleaned_data["main"].split(" ", 1)[0]])[0]

    def clean_secondary(self) -> list[Icd10Code]:
        raw = self.cleaned_data["secondary"]
        return lookup_codes(re.split(r"[;\s]+|,\s*", raw)) if raw.strip() else []
