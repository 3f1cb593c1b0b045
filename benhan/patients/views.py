from __future__ import annotations

import secrets

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from benhan.audit import access
from benhan.audit.chain import Actor
from benhan.core.htmx import render_page_or_fragment
from benhan.core.models import Submission
from benhan.encounters.models import Encounter
from benhan.patients import search as patient_search
from benhan.patients.actions import do_register_patient, do_update_patient
from benhan.patients.ethnicities import ETHNICITY_NAMES
from benhan.patients.forms import PatientForm
from benhan.patients.models import Patient


@login_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    access.require_role(request.user, "patient.search")
    q = request.GET.get("q", "")[:100]
    ctx = {"q": q, "results": None, "problem": ""}
    if q.strip():
        results, problem = patient_search.search(request.user.facility_id, q)
        access.audit(request, "patient.search", detail={"q": q, "count": len(results)})
        ctx.update(results=results, problem=problem)
    return render_page_or_fragment(
        request, "patients/search.html", "patients/search_results.html", ctx
    )


def _duplicate_cccd(facility_id: int, cccd: str | None, exclude: int | None = None):
    if not cccd:
        return None
    qs = Patient.objects.filter(facility_id=facility_id, cccd=cccd)
    if exclude:
        qs = qs.exclude(pk=exclude)
    return qs.first()


def _similar(facility_id: int, fields: dict, exclude: int | None = None) -> list[Patient]:
    from benhan.lib.vntext import search_key

    qs = Patient.objects.filter(
        facility_id=facility_id,
        name_key=search_key(fields["full_name"]),
        birth_year=fields["birth_year"],
    )
    if exclude:
        qs = qs.exclude(pk=exclude)
    return list(qs[:5])


@login_required
@require_http_methods(["GET", "POST"])
def register(request: HttpRequest) -> HttpResponse:
    user = request.user
    access.require_role(user, "patient.register")
    form = PatientForm(request.POST or None)
    similar: list[Patient] = []
    duplicate = None
    # Submission.token holds 64 characters; ours are 22. A longer one is not ours.
    token = request.POST.get("token", "")[:64] or secrets.token_urlsafe(16)
    if request.method == "POST":
        # A re-sent form: show the first submission's result before the duplicate
        # checks, which would otherwise find the patient it just registered.
        earlier = Submission.objects.filter(token=token).exclude(url="").first()
        if earlier is not None:
            return redirect(earlier.url)
    if request.method == "POST" and form.is_valid():
        fields = form.patient_fields()
        duplicate = _duplicate_cccd(user.facility_id, fields["cccd"])
        if duplicate is not None:
            form.add_error("cccd", _("A patient with this citizen ID is already registered."))
        else:
            similar = _similar(user.facility_id, fields)
            if not similar or form.cleaned_data["confirm_new"]:
                try:
                    with transaction.atomic():
                        earlier = Submission.claim(token)
                        if earlier is not None:
                            return redirect(earlier.url or "patients:search")
                        patient = do_register_patient(Actor.from_request(request), fields)
                        url = reverse("patients:detail", args=[patient.pk])
                        Submission.record_result(token, url)
                except IntegrityError:
                    # Lost a race with another registration of the same citizen ID.
                    duplicate = _duplicate_cccd(user.facility_id, fields["cccd"])
                    form.add_error(
                        "cccd", _("A patient with this citizen ID is already registered.")
                    )
                else:
                    messages.success(
                        request,
                        _("Registered %(name)s, MRN %(mrn)s.")
                        % {"name": patient.full_name, "mrn": patient.mrn},
                    )
                    return redirect(url)
    ctx = {"form": form, "similar": similar, "duplicate": duplicate, "token": token}
    status = 422 if request.method == "POST" else 200
    return render(request, "patients/register.html", ctx, status=status)


@login_required
@require_GET
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    patient = access.get_patient(request, pk)
    encounters = (
        Encounter.objects.filter(patient=patient)
        .select_related("department", "attending")
        .prefetch_related("diagnoses__code")
        .order_by("-started_at")[:50]
    )
    ctx = {
        "patient": patient,
        "encounters": encounters,
        "clinical": patient.access.clinical,
        "can_edit": access.allowed(request.user, "patient.edit"),
        "can_open": access.allowed(request.user, "encounter.open"),
        "can_admit": access.allowed(request.user, "encounter.admit"),
        "ethnicity": ETHNICITY_NAMES.get(patient.ethnicity, ""),
        "insurance_valid": patient.insurance_valid_on(timezone.localdate()),
        "has_open_inpatient": any(e.kind == "inpatient" and e.is_open for e in encounters),
    }
    return render(request, "patients/detail.html", ctx)


@login_required
@require_http_methods(["GET", "POST"])
def edit(request: HttpRequest, pk: int) -> HttpResponse:
    patient = access.get_patient(request, pk, "patient.edit")
    form = PatientForm(request.POST or None, initial=PatientForm.initial_from(patient))
    duplicate = None
    if request.method == "POST" and form.is_valid():
        fields = form.patient_fields()
        duplicate = _duplicate_cccd(patient.facility_id, fields["cccd"], exclude=patient.pk)
        if duplicate is not None:
            form.add_error("cccd", _("A patient with this citizen ID is already registered."))
        else:
            try:
                changed = do_update_patient(Actor.from_request(request), patient, fields)
            except IntegrityError:
                form.add_error("cccd", _("A patient with this citizen ID is already registered."))
            else:
                if changed:
                    messages.success(request, _("Saved."))
                return redirect("patients:detail", pk=patient.pk)
    ctx = {"form": form, "patient": patient, "duplicate": duplicate}
    status = 422 if request.method == "POST" else 200
    return render(request, "patients/edit.html", ctx, status=status)


@login_required
@require_http_methods(["POST"])
def break_glass(request: HttpRequest, pk: int) -> HttpResponse:
    access.require_role(request.user, "breakglass")
    patient = Patient.objects.filter(pk=pk, facility_id=request.user.facility_id).first()
    if patient is None:
        raise Http404
    try:
        access.break_glass(request, patient, request.POST.get("reason", ""))
    except ValueError as e:
        ctx = {"patient": patient, "error": str(e), "reason": request.POST.get("reason", "")}
        return render(request, "403_break_glass.html", ctx, status=403)
    target = request.POST.get("next") or reverse("patients:detail", args=[patient.pk])
    if not target.startswith("/") or target.startswith("//"):
        target = reverse("patients:detail", args=[patient.pk])
    return redirect(target)
