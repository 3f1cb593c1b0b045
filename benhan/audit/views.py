from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from benhan.accounts.models import Role, User
from benhan.audit import access
from benhan.audit.models import AuditEvent
from benhan.patients.models import Patient


@login_required
@require_GET
def events(request: HttpRequest) -> HttpResponse:
    """Who did what: filter by patient (MRN) or staff member (username)."""
    user = request.user
    if user.role != Role.ADMIN and not user.is_superuser:
        raise PermissionDenied(_("Only administrators may read the audit log."))
    qs = AuditEvent.objects.select_related("actor", "patient")
    if user.facility_id is not None or not user.is_superuser:
        qs = qs.filter(facility_id=user.facility_id)
    mrn = request.GET.get("mrn", "").strip()[:20]
    username = request.GET.get("user", "").strip()[:150]
    action = request.GET.get("action", "").strip()[:60]
    patient = staff = None
    if mrn:
        patient = Patient.objects.filter(facility_id=user.facility_id, mrn=mrn).first()
        qs = qs.filter(patient=patient) if patient else qs.none()
    if username:
        staff = User.objects.filter(facility_id=user.facility_id, username=username).first()
        qs = qs.filter(actor=staff) if staff else qs.none()
    if action:
        qs = qs.filter(action__startswith=action)
    page = Paginator(qs.order_by("-seq"), 50).get_page(request.GET.get("page"))
    access.audit(request, "audit.view", detail={"mrn": mrn, "user": username, "action": action})
    ctx = {
        "page": page,
        "mrn": mrn,
        "username": username,
        "action": action,
        "patient": patient,
        "staff": staff,
    }
    return render(request, "audit/events.html", ctx)
