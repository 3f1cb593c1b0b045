from __future__ import annotations

import secrets

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from benhan.accounts.models import Role
from benhan.audit import access
from benhan.audit.chain import Actor
from benhan.core.htmx import render_page_or_fragment
from benhan.core.models import Submission
from benhan.encounters import actions
from benhan.encounters.forms import DiagnosisForm, DischargeForm, OpenEncounterForm, TransferForm
from benhan.encounters.icd10 import search_codes
from benhan.encounters.models import EncounterKind


def _kinds_for(user) -> list[str]:
    kinds = [EncounterKind.OUTPATIENT, EncounterKind.EMERGENCY]
    if access.allowed(user, "encounter.admit"):
        kinds.append(EncounterKind.INPATIENT)
    return kinds


@login_required
@require_http_methods(["GET", "POST"])
def open_encounter(request: HttpRequest, patient_id: int) -> HttpResponse:
    user = request.user
    patient = access.patient_for_new_encounter(request, patient_id, "encounter.open")
    kinds = _kinds_for(user)
    departments = None if user.role == Role.RECEPTIONIST else user.department_ids()
    initial = {"kind": request.GET.get("kind", EncounterKind.OUTPATIENT)}
    if user.department_ids():
        initial["department"] = min(user.department_ids())
    if user.role == Role.DOCTOR:
        initial["attending"] = user.pk
    form = OpenEncounterForm(
        request.POST or None,
        facility_id=user.facility_id,
        departments=departments,
        kinds=kinds,
        initial=initial,
    )
    # Submission.token holds 64 characters; ours are 22. A longer one is not ours.
    token = request.POST.get("token", "")[:64] or secrets.token_urlsafe(16)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        access.check_department_for_new_encounter(user, data["department"].pk)
        if data["kind"] == EncounterKind.INPATIENT:
            access.require_role(user, "encounter.admit")
        try:
            with transaction.atomic():
                earlier = Submission.claim(token)
                if earlier is not None:
                    return redirect(earlier.url or reverse("patients:detail", args=[patient.pk]))
                encounter = actions.do_open_encounter(
                    Actor.from_request(request),
                    patient,
                    kind=data["kind"],
                    department=data["department"],
                    attending=data["attending"],
                    reason=data["reason"],
                    started_at=data["started_at"],
                )
                # Receptionists do not read the encounter page; send them back to the patient.
                url = (
                    reverse("patients:detail", args=[patient.pk])
                    if user.role == Role.RECEPTIONIST
                    else reverse("encounters:detail", args=[encounter.pk])
                )
                Submission.record_result(token, url)
        except ValidationError as e:
            form.add_error(None, e)
        else:
            messages.success(
                request,
                _("%(kind)s opened in %(dept)s.")
                % {"kind": encounter.get_kind_display(), "dept": encounter.department},
            )
            return redirect(url)
    ctx = {"form": form, "patient": patient, "token": token}
    return render(
        request, "encounters/open.html", ctx, status=422 if request.method == "POST" else 200
    )


@login_required
@require_GET
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    encounter = access.get_encounter(request, pk)
    user = request.user
    in_dept = encounter.department_id in user.department_ids() or encounter.access.break_glass
    can_write = encounter.is_open and in_dept and user.role != Role.RECORDS_OFFICER
    ctx = {
        "encounter": encounter,
        "patient": encounter.patient,
        "stays": encounter.stays.select_related("department", "attending"),
        "diagnoses": encounter.diagnoses.select_related("code", "recorded_by", "retired_by"),
        "can_diagnose": can_write and access.allowed(user, "encounter.diagnose"),
        "can_transfer": can_write and access.allowed(user, "encounter.transfer"),
        "can_discharge": can_write and access.allowed(user, "encounter.discharge"),
        "can_admit": (
            encounter.kind != EncounterKind.INPATIENT and access.allowed(user, "encounter.admit")
        ),
    }
    return render(request, "encounters/detail.html", ctx)


def _write_view(request, pk, action, form_class, template, apply):
    encounter = access.get_encounter(request, pk, action)
    kwargs = {"encounter": encounter} if form_class is TransferForm else {}
    form = form_class(request.POST or None, **kwargs)
    if request.method == "POST" and form.is_valid():
        try:
            apply(Actor.from_request(request), encounter, form.cleaned_data)
        except ValidationError as e:
            form.add_error(None, e)
        else:
            messages.success(request, _("Saved."))
            return redirect("encounters:detail", pk=encounter.pk)
    ctx = {"form": form, "encounter": encounter, "patient": encounter.patient}
    return render(request, template, ctx, status=422 if request.method == "POST" else 200)


@login_required
@require_http_methods(["GET", "POST"])
def transfer(request: HttpRequest, pk: int) -> HttpResponse:
    def apply(actor, encounter, data):
        actions.do_transfer(
            actor,
            encounter,
            department=data["department"],
            attending=data["attending"],
            at=data["at"],
            note=data["note"],
        )

    return _write_view(
        request, pk, "encounter.transfer", TransferForm, "encounters/transfer.html", apply
    )


@login_required
@require_http_methods(["GET", "POST"])
def discharge(request: HttpRequest, pk: int) -> HttpResponse:
    def apply(actor, encounter, data):
        actions.do_discharge(
            actor,
            encounter,
            ended_at=data["ended_at"],
            outcome=data["outcome"],
            discharge_type=data["discharge_type"],
            note=data["note"],
        )

    return _write_view(
        request, pk, "encounter.discharge", DischargeForm, "encounters/discharge.html", apply
    )


@login_required
@require_http_methods(["GET", "POST"])
def diagnoses(request: HttpRequest, pk: int) -> HttpResponse:
    def apply(actor, encounter, data):
        actions.do_set_diagnoses(actor, encounter, main=data["main"], secondary=data["secondary"])

    return _write_view(
        request, pk, "encounter.diagnose", DiagnosisForm, "encounters/diagnoses.html", apply
    )


@login_required
@require_GET
def admit_from(request: HttpRequest, pk: int) -> HttpResponse:
    """Admit the patient of an outpatient or emergency visit."""
    encounter = access.get_encounter(request, pk)
    if encounter.kind == EncounterKind.INPATIENT:
        raise Http404
    url = reverse("encounters:open", args=[encounter.patient_id]) + "?kind=inpatient"
    return redirect(url)


@login_required
@require_GET
def icd10_search(request: HttpRequest) -> HttpResponse:
    """Code list search, as a <datalist> fragment for htmx or a page without JavaScript."""
    q = request.GET.get("q", "")[:60]
    codes = search_codes(q) if len(q.strip()) >= 2 else []
    return render_page_or_fragment(
        request, "encounters/icd10.html", "encounters/icd10_options.html", {"codes": codes, "q": q}
    )
