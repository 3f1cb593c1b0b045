from __future__ import annotations

import re
from datetime import date

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from benhan.lib import ids
from benhan.lib.regions import province_choices
from benhan.lib.vntext import is_plausible_name, tidy_name
from benhan.patients.ethnicities import ETHNICITIES
from benhan.patients.models import Sex


def parse_birth(raw: str) -> tuple[int, date | None]:
    """'dd/mm/yyyy' or 'yyyy' -> (year, date or None)."""
    text = raw.strip()
    if re.fullmatch(r"\d{4}", text):
        year, day = int(text), None
    else:
        m = re.fullmatch(r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})", text)
        if not m:
            raise ValidationError(_("Write the date of birth as dd/mm/yyyy, or just the year."))
        try:
            day = date(int(m[3]), int(m[2]), int(m[1]))
        except ValueError:
            raise ValidationError(_("That date does not exist.")) from None
        year = day.year
    today = timezone.localdate()
    if year < 1900 or (day or date(year, 1, 1)) > today:
        raise ValidationError(_("The date of birth must be between 1900 and today."))
    return year, day


class DateField(forms.DateField):
    """Vietnamese date order first, ISO accepted too."""

    input_formats = ["%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y-%m-%d"]


def _text(label, max_length, required=False, **attrs):
    return forms.CharField(
        label=label,
        max_length=max_length,
        required=required,
        widget=forms.TextInput(attrs=attrs or None),
    )


class PatientForm(forms.Form):
    full_name = _text(_("Full name"), 100, required=True, autocomplete="off")
    birth = forms.CharField(
        label=_("Date of birth"),
        max_length=10,
        help_text=_("dd/mm/yyyy, or only the year if the day is not known"),
        widget=forms.TextInput(attrs={"placeholder": "dd/mm/yyyy", "inputmode": "numeric"}),
    )
    sex = forms.ChoiceField(label=_("Sex"), choices=Sex.choices, widget=forms.RadioSelect)
    # Room for the 12 digits typed in groups ("079 085 123 456"); parse_cccd strips them.
    cccd = _text(_("Citizen ID (CCCD)"), 20, inputmode="numeric")
    insurance_number = _text(_("Health-insurance card number"), 20)
    insurance_valid_from = DateField(
        label=_("Card valid from"),
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "dd/mm/yyyy"}),
    )
    insurance_valid_to = DateField(
        label=_("Card valid to"),
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "dd/mm/yyyy"}),
    )
    insurance_facility_code = _text(_("Registered primary-care facility code"), 5)
    phone = _text(_("Phone"), 16, inputmode="tel", autocomplete="off")
    address = _text(_("Address (house, street, village)"), 200)
    province_code = forms.ChoiceField(
        label=_("Province / city"),
        required=False,
        choices=[("", "—"), *province_choices()],
    )
    commune_code = _text(_("Commune / ward code"), 5, inputmode="numeric")
    ethnicity = forms.ChoiceField(
        label=_("Ethnicity"), required=False, choices=[("", "—"), *ETHNICITIES]
    )
    occupation = _text(_("Occupation"), 100)
    emergency_name = _text(_("Emergency contact name"), 100)
    emergency_relation = _text(_("Relationship"), 40)
    emergency_phone = _text(_("Emergency contact phone"), 16, inputmode="tel")

    # Shown after a warning about a similar patient; ticking it registers anyway.
    confirm_new = forms.BooleanField(
        label=_("I checked: this is a different person"), required=False
    )

    def clean_full_name(self) -> str:
        name = tidy_name(self.cleaned_data["full_name"])
        if not is_plausible_name(name):
            raise ValidationError(
                _("A name may contain only letters, spaces, hyphens, apostrophes and dots.")
            )
        return name

    def clean_birth(self) -> tuple[int, date | None]:
        return parse_birth(self.cleaned_data["birth"])

    def clean_cccd(self) -> str | None:
        raw = self.cleaned_data["cccd"]
        return ids.parse_cccd(raw).number if raw.strip() else None

    def clean_insurance_number(self) -> str:
        raw = self.cleaned_data["insurance_number"]
        return ids.parse_insurance_card(raw).number if raw.strip() else ""

    def clean_insurance_facility_code(self) -> str:
        raw = self.cleaned_data["insurance_facility_code"]
        return ids.parse_facility_code(raw) if raw.strip() else ""

    def clean_phone(self) -> str:
        raw = self.cleaned_data["phone"]
        return ids.parse_phone(raw) if raw.strip() else ""

    def clean_emergency_phone(self) -> str:
        raw = self.cleaned_data["emergency_phone"]
        return ids.parse_phone(raw) if raw.strip() else ""

    def clean_commune_code(self) -> str:
        code = self.cleaned_data["commune_code"].strip()
        if code and not re.fullmatch(r"\d{5}", code):
            raise ValidationError(_("A commune code has 5 digits."))
        return code

    def clean_emergency_name(self) -> str:
        name = tidy_name(self.cleaned_data["emergency_name"])
        if name and not is_plausible_name(name):
            raise ValidationError(
                _("A name may contain only letters, spaces, hyphens, apostrophes and dots.")
            )
        return name

    def clean(self):
        data = super().clean()
        birth = data.get("birth")
        cccd = data.get("cccd")
        if cccd and birth and data.get("sex"):
            try:
                ids.check_cccd_matches(ids.parse_cccd(cccd), birth[0], data["sex"])
            except ValidationError as e:
                self.add_error("cccd", e)
        start, end = data.get("insurance_valid_from"), data.get("insurance_valid_to")
        if start and end and end < start:
            self.add_error("insurance_valid_to", _("The card cannot expire before it starts."))
        if (start or end or data.get("insurance_facility_code")) and not data.get(
            "insurance_number"
        ):
            self.add_error("insurance_number", _("Enter the card number for these card details."))
        if data.get("commune_code") and not data.get("province_code"):
            self.add_error("province_code", _("Choose the province of this commune."))
        return data

    def patient_fields(self) -> dict:
        """cleaned_data in the shape of Patient's fields."""
        data = dict(self.cleaned_data)
        year, day = data.pop("birth")
        data.pop("confirm_new", None)
        data["birth_year"] = year
        data["birth_date"] = day
        return data

    @classmethod
    def initial_from(cls, patient) -> dict:
        initial = {f: getattr(patient, f) for f in cls.base_fields if hasattr(patient, f)}
        initial["birth"] = patient.birth_display
        initial["cccd"] = patient.cccd or ""
        for f in ("insurance_valid_from", "insurance_valid_to"):
            value = getattr(patient, f)
            initial[f] = value.strftime("%d/%m/%Y") if value else ""
        return initial


class SearchForm(forms.Form):
    q = forms.CharField(label=_("Search patients"), max_length=100, required=False)
