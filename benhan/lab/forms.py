"""Plain forms of the laboratory pages: they work without JavaScript; htmx only adds
the search-as-you-type box of the order page and the inbox badge."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from benhan.lab.models import AnalyzerMessage, LabOrder

_TEXTAREA = {"rows": 2}
# The same words as benhan.lab.actions.do_manual_result's refusal.
_REASON = _("Give the reason for changing the result (at least 5 characters).")


class OrderForm(forms.Form):
    """Tests and panels to order. The checkboxes are drawn by the template (grouped by
    kind, panels first); the form only checks that each id is in the catalogue shown."""

    tests = forms.TypedMultipleChoiceField(
        label=_("Tests"), coerce=int, error_messages={"required": _("Choose at least one test.")}
    )
    priority = forms.ChoiceField(
        label=_("Priority"), choices=LabOrder.Priority.choices, initial=LabOrder.Priority.ROUTINE,
        widget=forms.RadioSelect,
    )  # fmt: skip
    note = forms.CharField(
        label=_("Clinical note for the laboratory"), max_length=500, required=False,
        widget=forms.Textarea(attrs=_TEXTAREA),
    )  # fmt: skip

    def __init__(self, *args, test_ids=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tests"].choices = [(pk, pk) for pk in test_ids]


class RepeatForm(forms.Form):
    reason = forms.CharField(label=_("Reason for the repeat"), max_length=500)


class CorrectForm(forms.Form):
    value = forms.CharField(label=_("Corrected value"), max_length=200)
    reason = forms.CharField(
        label=_("Reason for the correction"), min_length=5, max_length=500,
        error_messages={"required": _REASON, "min_length": _REASON},
    )  # fmt: skip


def manual_form(tests, data=None) -> forms.Form:
    """One optional value per ordered test that has no result yet (field "t<test id>")."""
    fields = {
        f"t{t.pk}": forms.CharField(label=f"{t.code} {t.name}", max_length=200, required=False)
        for t in tests
    }
    return type("ManualForm", (forms.Form,), fields)(data=data)


class ImagingForm(forms.Form):
    findings = forms.CharField(
        label=_("Findings"), max_length=10000, required=False,
        widget=forms.Textarea(attrs={"rows": 8}),
    )  # fmt: skip
    conclusion = forms.CharField(
        label=_("Conclusion"), max_length=2000, required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )  # fmt: skip


class LinkForm(forms.Form):
    accession = forms.CharField(label=_("Accession number"), max_length=20)


class MessageFilterForm(forms.Form):
    analyzer = forms.TypedChoiceField(label=_("Analyzer"), coerce=int, required=False,
                                      empty_value=None)  # fmt: skip
    outcome = forms.ChoiceField(
        label=_("Outcome"), required=False, choices=[("", "—"), *AnalyzerMessage.Outcome.choices]
    )

    def __init__(self, *args, analyzers=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["analyzer"].choices = [("", "—"), *((a.pk, a.name) for a in analyzers)]
