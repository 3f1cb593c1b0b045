from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from benhan.records.formtypes import FormType
from benhan.records.models import PatientSignature, ScanKind


def draft_form(form_type: FormType, data=None, initial=None) -> forms.Form:
    """A plain Django form for a form type's fields (drafts: nothing is required yet)."""
    fields = {}
    for f in form_type.fields:
        if f.kind in ("textarea", "lines", "table"):
            rows = 6 if f.kind == "table" else 3
            field = forms.CharField(
                max_length=f.max_length, widget=forms.Textarea(attrs={"rows": rows})
            )
        elif f.kind == "choice":
            field = forms.ChoiceField(choices=[("", "—"), *f.choices])
        elif f.kind == "number":
            field = forms.FloatField()  # JSON-serialisable, unlike Decimal
        else:
            attrs = {"placeholder": "dd/mm/yyyy hh:mm"} if f.kind == "datetime" else {}
            field = forms.CharField(max_length=f.max_length, widget=forms.TextInput(attrs=attrs))
        field.label = f.label
        field.required = False  # checked at completion, so a draft can be saved half-done
        # Still marked, so staff see what Complete will ask for.
        field.widget.attrs["aria-required"] = "true" if f.required else "false"
        if f.required:
            field.help_text = (f"{f.help} " if f.help else "") + str(_("Needed to complete."))
        if not f.required:
            field.help_text = f.help
        fields[f.name] = field
    cls = type("DraftForm", (forms.Form,), fields)
    return cls(data=data, initial=initial)


class SignForm(forms.Form):
    """The secret that unlocks the user's signer: internal PIN, token PIN or one-time code."""

    pin = forms.CharField(
        label=_("Signing PIN"),
        min_length=4,
        max_length=64,
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "inputmode": "numeric"}),
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        if user is not None:
            from benhan.signing.selection import secret_label

            self.fields["pin"].label = secret_label(user)


class AmendForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason for the amendment"),
        min_length=10,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class NewDocumentForm(forms.Form):
    form_type = forms.ChoiceField(label=_("Form"))

    def __init__(self, *args, choices, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["form_type"].choices = choices


class ScanForm(forms.Form):
    kind = forms.ChoiceField(label=_("Type"), choices=ScanKind.choices)
    title = forms.CharField(label=_("Title"), max_length=200)
    document_date = forms.DateField(
        label=_("Date of the document"), required=False,
        input_formats=["%d/%m/%Y", "%Y-%m-%d"],
        widget=forms.TextInput(attrs={"placeholder": "dd/mm/yyyy"}),
    )  # fmt: skip
    colour = forms.BooleanField(label=_("Keep colour (photos, coloured stamps)"), required=False)
    paper_location = forms.CharField(
        label=_("Where the paper is kept (box / shelf)"), max_length=200, required=False
    )


class PatientSignForm(forms.Form):
    """Who signs on the tablet, how their identity was checked; the drawing comes with it."""

    outcome = forms.ChoiceField(choices=PatientSignature.Outcome.choices, widget=forms.HiddenInput)
    signer = forms.ChoiceField(
        label=_("Who signs"),
        choices=[("patient", _("The patient")), ("representative", _("A representative"))],
        widget=forms.RadioSelect,
        initial="patient",
    )
    representative_name = forms.CharField(
        label=_("Representative's full name"), max_length=200, required=False
    )
    relation = forms.CharField(
        label=_("Relationship to the patient"), max_length=60, required=False,
        help_text=_("e.g. son, wife, guardian"),
    )  # fmt: skip
    identity = forms.ChoiceField(
        label=_("How the identity was checked"),
        # No default: the witness says what they actually checked.
        choices=[("", "—"), *PatientSignature.Identity.choices],
    )
    identity_detail = forms.CharField(
        label=_("ID number seen, or how"), max_length=200, required=False,
        help_text=_("For a citizen ID card: the 12 digits as read from the card."),
    )  # fmt: skip
    refusal_reason = forms.CharField(
        label=_("Reason the patient gives"), max_length=1000, required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )  # fmt: skip
    pin = forms.CharField(
        label=_("Your signing PIN (as witness)"), max_length=64, required=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "inputmode": "numeric"}),
    )  # fmt: skip
    shown = forms.CharField(max_length=64, widget=forms.HiddenInput)
    # Filled by static/js/patient_sign.js.
    strokes = forms.CharField(required=False, max_length=2_000_000, widget=forms.HiddenInput)
    canvas = forms.CharField(required=False, max_length=200, widget=forms.HiddenInput)
    client_time = forms.CharField(required=False, max_length=40, widget=forms.HiddenInput)
    tz_offset = forms.CharField(required=False, max_length=6, widget=forms.HiddenInput)
    pointer = forms.CharField(required=False, max_length=20, widget=forms.HiddenInput)
    screen = forms.CharField(required=False, max_length=40, widget=forms.HiddenInput)


class PaperForm(forms.Form):
    paper_location = forms.CharField(
        label=_("Where the paper original is kept (box / shelf)"), max_length=200,
        help_text=_("The paper must be kept: say where it can be found."),
    )  # fmt: skip
    colour = forms.BooleanField(label=_("Keep colour (coloured stamps)"), required=False)
    deskew = forms.BooleanField(label=_("Straighten slightly tilted photos"), required=False,
                                initial=True)  # fmt: skip
