from __future__ import annotations

from datetime import datetime, time, timedelta

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from benhan.accounts.models import Role
from benhan.audit import access
from benhan.encounters.models import Encounter, EncounterKind, EncounterStatus


def _today_bounds() -> tuple[datetime, datetime]:
    today = timezone.localdate()
    start = timezone.make_aware(datetime.combine(today, time.min))
    return start, start + timedelta(days=1)


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The user's worklist: today's visits and current inpatients of their departments."""
    user = request.user
    ctx: dict = {"role": user.role}
    if access.allowed(user, "worklist.view"):
        start, end = _today_bounds()
        base = Encounter.objects.filter(facility_id=user.facility_id).select_related(
            "patient", "department", "attending"
        )
        if user.role not in (Role.RECEPTIONIST, Role.RECORDS_OFFICER):
            base = base.filter(department_id__in=user.department_ids())
        visits = base.filter(
            kind__in=[EncounterKind.OUTPATIENT, EncounterKind.EMERGENCY],
            started_at__gte=start,
            started_at__lt=end,
        ).order_by("-started_at")[:100]
        inpatients = base.filter(
            kind=EncounterKind.INPATIENT, status=EncounterStatus.OPEN
        ).order_by("department__name", "started_at")[:200]
        ctx.update(
            visits=visits,
            inpatients=inpatients,
            show_clinical=user.role != Role.RECEPTIONIST,
            departments=user.departments.all(),
        )
        access.audit(request, "worklist.view")
    return render(request, "core/home.html", ctx)


def forbidden(request: HttpRequest, exception=None) -> HttpResponse:
    """403: audited, with the break-the-glass form when the user may use it."""
    patient = getattr(exception, "patient", None)
    if request.user.is_authenticated:
        access.audit(
            request,
            "access.denied",
            patient=patient,
            detail={
                "path": request.path[:200],
                "method": request.method,
                "message": str(exception or "")[:200],
            },
        )
    if isinstance(exception, access.Refused) and not isinstance(exception, access.NeedsBreakGlass):
        patient = None  # only the break-the-glass page shows the patient's name
    if request.headers.get("X-Benhan-Upload") == "1":  # static/js/upload.js shows the reason
        return JsonResponse({"errors": [str(exception or _("Access refused."))]}, status=403)
    ctx = {
        "message": str(exception) if exception else "",
        "patient": patient,
        "next": request.get_full_path(),
    }
    template = "403_break_glass.html" if patient is not None else "403.html"
    return render(request, template, ctx, status=403)


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """For monitoring: the database answers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
