"""The laboratory's pages: ordering, the worklist, collection and labels, a specimen's
results (review, repeat, correct, enter by hand, imaging reports, sign), the unmatched
queue, the analyzer message log, and the wards' inbox of signed results.

Thin views: every read of patient data goes through benhan.audit.access (get_encounter,
get_order, get_specimen, lab_worklist), every clinical write is a benhan.lab.actions
do_* action; refusals are messages, not pages.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, time

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F, Prefetch, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from benhan.audit import access
from benhan.audit.chain import Actor
from benhan.lab import actions
from benhan.lab.forms import (
    CorrectForm,
    ImagingForm,
    LinkForm,
    MessageFilterForm,
    OrderForm,
    RepeatForm,
    manual_form,
)
from benhan.lab.models import (
    Analyzer,
    AnalyzerMessage,
    LabTest,
    OrderItem,
    OrderStatus,
    PanelMember,
    Result,
    ResultNotice,
    ResultState,
    Specimen,
    SpecimenStatus,
    SpecimenType,
    TestKind,
)
from benhan.lib.vntext import search_key, search_terms
from benhan.records.views import error_text, run_step

LIST_LIMIT = 100  # rows per worklist section
LOG_LIMIT = 200  # analyzer messages shown
RAW_SHOWN = 32 * 1024  # bytes of a raw message shown on its page (the rest: download)
MAX_IMAGE_UPLOAD = 80 * 1024 * 1024


def _form_errors(request: HttpRequest, form) -> None:
    for errs in form.errors.values():
        for m in errs:
            messages.error(request, m)


def _css(result: Result) -> str:
    """The highlight of a value: critical, high, low, abnormal."""
    if result.critical:
        return "crit"
    return {"H": "hi", "L": "lo", "A": "abn"}.get(result.interpretation, "")


def _today_start() -> datetime:
    return timezone.make_aware(datetime.combine(timezone.localdate(), time.min))


# --- Ordering (doctor) ---------------------------------------------------------------


def _catalogue(facility_id: int) -> list[LabTest]:
    return list(
        LabTest.objects.filter(facility_id=facility_id, active=True).only(
            "id", "code", "name", "kind", "is_panel", "loinc", "sort_order", "facility_id"
        )
    )


def _grouped(tests: list[LabTest]) -> list[tuple[str, list[LabTest]]]:
    """The catalogue by kind (laboratory, ultrasound, X-ray, ECG), panels first, each
    panel with the codes of its members."""
    members: dict[int, list[str]] = defaultdict(list)
    panels = [t.pk for t in tests if t.is_panel]
    if panels:
        for m in PanelMember.objects.filter(panel_id__in=panels).select_related("test"):
            members[m.panel_id].append(m.test.code)
    out = []
    for kind, label in TestKind.choices:
        of_kind = [t for t in tests if t.kind == kind]
        for t in of_kind:
            t.member_codes = members.get(t.pk, [])
        of_kind.sort(key=lambda t: (not t.is_panel, t.sort_order, t.code))
        if of_kind:
            out.append((label, of_kind))
    return out


def _search(tests: list[LabTest], q: str, limit: int = 20) -> list[LabTest]:
    """Word-prefix match on code, name and LOINC, with or without diacritics."""
    terms = search_terms(q.replace("-", " "))
    if not terms:
        return []
    hits = []
    for t in tests:
        key = search_key(f"{t.code} {t.name} {t.loinc}".replace("-", " "))
        if all(f" {w}" in key for w in terms):
            hits.append(t)
    hits.sort(key=lambda t: (not t.is_panel, t.sort_order, t.code))
    return hits[:limit]


@login_required
@require_http_methods(["GET", "POST"])
def order(request: HttpRequest, encounter_pk: int) -> HttpResponse:
    """Order tests, panels and imaging on an open encounter."""
    encounter = access.get_encounter(request, encounter_pk, "lab.order")
    tests = _catalogue(encounter.facility_id)
    by_id = {t.pk: t for t in tests}
    form = OrderForm(request.POST or None, test_ids=list(by_id))
    if request.method == "POST" and form.is_valid():
        chosen = [by_id[pk] for pk in dict.fromkeys(form.cleaned_data["tests"])]
        result = {}

        def step():
            result["order"] = actions.do_order(
                Actor.from_request(request), encounter, chosen,
                priority=form.cleaned_data["priority"], note=form.cleaned_data["note"],
            )  # fmt: skip

        if run_step(request, step):
            o = result["order"]
            messages.success(request, _("Order %(number)s placed: %(n)s test(s).")
                             % {"number": o.number, "n": o.items.count()})  # fmt: skip
            return redirect("lab:encounter", pk=encounter.pk)
    checked = {int(v) for v in request.POST.getlist("tests") if v.isdigit()}
    ctx = {
        "encounter": encounter,
        "patient": encounter.patient,
        "form": form,
        "groups": _grouped(tests),
        "checked": checked,
    }
    return render(request, "lab/order.html", ctx, status=422 if request.method == "POST" else 200)


@login_required
@require_GET
def test_search(request: HttpRequest) -> HttpResponse:
    """htmx: ?q= → matching tests; ?pick=<id> → that test's box in the list, ticked (so a
    test picked twice is still ticked once)."""
    access.require_role(request.user, "lab.order")
    tests = _catalogue(request.user.facility_id)
    pick = request.GET.get("pick", "")
    if pick:
        test = next((t for t in tests if str(t.pk) == pick), None)
        if test is None:
            raise Http404
        return render(request, "lab/_test_option.html", {"t": test, "picked": True})
    q = request.GET.get("q", "")[:60]
    return render(request, "lab/_test_hits.html", {"hits": _search(tests, q), "q": q})


# --- The encounter's tests ------------------------------------------------------------


def _order_labels(o) -> list[str]:
    """What was ordered, as the doctor chose it: panels once, single tests."""
    out, seen = [], set()
    for item in o.items.all():
        t = item.panel or item.test
        if t.pk not in seen:
            seen.add(t.pk)
            out.append(t.code)
    return out


@login_required
@require_GET
def encounter(request: HttpRequest, pk: int) -> HttpResponse:
    """An encounter's orders, specimens and signed results, with their reports."""
    enc = access.get_encounter(request, pk)
    specimens_qs = Specimen.objects.select_related("report").prefetch_related("report__versions")
    orders = list(
        enc.lab_orders.select_related("ordered_by", "department").prefetch_related(
            Prefetch("items", queryset=OrderItem.objects.select_related("test", "panel")),
            Prefetch("specimens", queryset=specimens_qs),
        )
    )
    signed_results: dict[int, list[Result]] = defaultdict(list)
    signed = Result.objects.filter(
        specimen__order__encounter=enc,
        specimen__status=SpecimenStatus.SIGNED,
        state=ResultState.CURRENT,
    )
    for r in signed.select_related("test", "analyzer").order_by("test__sort_order", "id"):
        r.css = _css(r)
        signed_results[r.specimen_id].append(r)
    for o in orders:
        o.labels = _order_labels(o)
        for s in o.specimens.all():
            s.signed_results = signed_results.get(s.pk, [])
            versions = list(s.report.versions.all()) if s.report else []
            s.pdf_version = max((v.version for v in versions), default=None)
    ctx = {
        "encounter": enc,
        "patient": enc.patient,
        "orders": orders,
        "can_order": access.allowed(request.user, "lab.order") and enc.is_open,
    }
    return render(request, "lab/encounter.html", ctx)


# --- The laboratory's worklist --------------------------------------------------------


@login_required
@require_GET
def worklist(request: HttpRequest) -> HttpResponse:
    """Technicians: every step. Nurses: the samples to collect on their wards."""
    user = request.user
    access.require_role(user, "lab.collect")
    full = access.allowed(user, "lab.work")
    fid = user.facility_id
    collect = _to_collect(fid, None if full else user.department_ids())
    # Each list showing patients is audited as a view of it; an empty one showed nobody.
    if collect:
        access.lab_worklist(request, "collect", "lab.collect")
    ctx: dict = {"full": full, "to_collect": collect}
    if full:
        base = Specimen.objects.filter(facility_id=fid).select_related(
            "order__encounter__patient", "order__department"
        )
        waiting = base.filter(
            status__in=[SpecimenStatus.COLLECTED, SpecimenStatus.PARTIAL]
        ).order_by("collected_at")[:LIST_LIMIT]
        complete = list(
            base.filter(status=SpecimenStatus.COMPLETE)
            .annotate(
                signatures=Count("report__versions__signatures", distinct=True),
                n_critical=Count("results", distinct=True, filter=Q(
                    results__state=ResultState.CURRENT, results__critical=True)),
                n_abnormal=Count("results", distinct=True, filter=Q(
                    results__state=ResultState.CURRENT) & ~Q(results__interpretation="")),
            )
            .order_by("-order__priority", "collected_at")[: 2 * LIST_LIMIT]
        )  # fmt: skip
        signed = (
            base.filter(status=SpecimenStatus.SIGNED, signed_at__gte=_today_start())
            .select_related("report")
            .order_by("-signed_at")[:LIST_LIMIT]
        )
        ctx.update(
            waiting=list(waiting),
            to_sign=[s for s in complete if not s.signatures],
            to_verify=[s for s in complete if s.signatures],
            signed=list(signed),
            unmatched=Result.objects.filter(facility_id=fid, state=ResultState.UNMATCHED).count(),
        )
        shown = {"waiting": ctx["waiting"], "review": ctx["to_sign"],
                 "verify": ctx["to_verify"], "signed": ctx["signed"]}  # fmt: skip
        for name, rows in shown.items():
            if rows:
                access.lab_worklist(request, name)
    return render(request, "lab/worklist.html", ctx)


def _to_collect(facility_id: int, departments: set[int] | None) -> list:
    from benhan.lab.models import LabOrder

    qs = LabOrder.objects.filter(facility_id=facility_id, status=OrderStatus.ORDERED)
    if departments is not None:
        qs = qs.filter(encounter__department_id__in=departments)
    # "stat" sorts after "routine": urgent orders first, then the oldest.
    qs = (
        qs.select_related("encounter__patient", "encounter__department", "ordered_by")
        .prefetch_related(Prefetch("items", queryset=OrderItem.objects.select_related("test",
                                                                                      "panel")))
        .order_by("-priority", "ordered_at")[:LIST_LIMIT]
    )  # fmt: skip
    out = list(qs)
    for o in out:
        o.labels = _order_labels(o)
    return out


# --- An order: collect, labels -----------------------------------------------------------


@login_required
@require_GET
def order_detail(request: HttpRequest, pk: int) -> HttpResponse:
    o = access.get_order(request, pk)
    items = list(o.items.select_related("test", "panel", "specimen"))
    specimens = list(o.specimens.all())
    for s in specimens:
        s.tests = [i.test.code for i in items if i.specimen_id == s.pk]
    may_collect = access.allowed(request.user, "lab.collect")
    ctx = {
        "order": o,
        "patient": o.encounter.patient,
        "items": items,
        "specimens": specimens,
        "can_collect": may_collect
        and any(i.specimen_id is None for i in items)
        and o.status != OrderStatus.CANCELLED,
        "can_label": may_collect and bool(specimens),
    }
    return render(request, "lab/order_detail.html", ctx)


@login_required
@require_POST
def collect(request: HttpRequest, pk: int) -> HttpResponse:
    """Step 1: the sample is taken; accession numbers; then print the labels."""
    o = access.get_order(request, pk, "lab.collect")
    done = {}

    def step():
        done["specimens"] = actions.do_collect(Actor.from_request(request), o)

    if run_step(request, step):
        accessions = ", ".join(s.accession for s in done["specimens"])
        messages.success(request, _("Collected. Accession numbers: %(list)s. Print the labels.")
                         % {"list": accessions})  # fmt: skip
    return redirect("lab:order", pk=o.pk)


def _label_specimens(request: HttpRequest, pk: int):
    o = access.get_order(request, pk, "lab.collect")
    qs = o.specimens.select_related("order__encounter__patient")
    if request.GET.get("s", "").isdigit():
        qs = qs.filter(pk=int(request.GET["s"]))
    specimens = list(qs.order_by("pk"))
    if not specimens:
        raise Http404
    return o, specimens


@login_required
@require_GET
def labels_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    from benhan.lab.labels import label_pdf

    o, specimens = _label_specimens(request, pk)
    response = HttpResponse(label_pdf(specimens), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="nhan-{o.number}.pdf"'
    return response


@login_required
@require_GET
def labels_zpl(request: HttpRequest, pk: int) -> HttpResponse:
    from benhan.lab.labels import label_zpl

    o, specimens = _label_specimens(request, pk)
    response = HttpResponse(label_zpl(specimens), content_type="text/plain; charset=us-ascii")
    response["Content-Disposition"] = f'attachment; filename="nhan-{o.number}.zpl"'
    return response


# --- A specimen: results, review, sign ----------------------------------------------------


def _sign_state(specimen: Specimen, user) -> dict:
    """Which signing form the page offers: the technician's, the second verifier's, none."""
    from benhan.records import guards
    from benhan.records.models import DocumentStatus

    state = {"can_sign": False, "can_verify": False, "waits_verifier": False, "pdf": None,
             "not_signable": ""}  # fmt: skip
    doc = specimen.report
    version = doc.current_version() if doc else None
    if specimen.status == SpecimenStatus.SIGNED:
        if version is not None:
            state["pdf"] = (doc.pk, version.version)
        return state
    if doc is None:
        if access.allowed(user, "lab.work"):
            try:
                actions.check_signable(specimen)
            except ValidationError as e:
                state["not_signable"] = error_text(e)
            else:
                state["can_sign"] = True
        return state
    signed = version is not None and version.signatures.exists()
    state["waits_verifier"] = signed and doc.status == DocumentStatus.COMPLETED
    try:
        guards.next_slot_for(doc, version, user)
    except ValidationError:
        may = False
    else:
        may = True
    if state["waits_verifier"]:
        state["can_verify"] = may and access.allowed(user, "lab.verify")
    else:
        # Stopped half-way (a wrong PIN): the technician signs the report already made.
        state["can_sign"] = access.allowed(user, "lab.work") and (
            may or doc.status == DocumentStatus.SIGNED
        )
    return state


def _specimen_page(request: HttpRequest, specimen: Specimen, imaging_form=None,
                   status: int = 200) -> HttpResponse:  # fmt: skip
    from benhan.records.forms import SignForm

    user = request.user
    items = list(specimen.items.select_related("test", "panel"))
    current, superseded = [], []
    for r in specimen.results.select_related("test", "analyzer", "entered_by").order_by(
        "test__sort_order", "id"
    ):
        r.css = _css(r)
        if r.state == ResultState.CURRENT:
            current.append(r)
        elif r.state == ResultState.SUPERSEDED:
            superseded.append(r)
    is_imaging = specimen.specimen_type == SpecimenType.NONE
    is_lab = access.allowed(user, "lab.work")
    can_work = is_lab and _changeable(specimen)
    done = {r.test_id for r in current}
    missing = [i.test for i in items if i.test_id not in done and i.status != OrderStatus.CANCELLED]
    o = specimen.order
    if imaging_form is None and can_work and is_imaging:
        initial = {"findings": specimen.findings, "conclusion": specimen.conclusion}
        imaging_form = ImagingForm(initial=initial)
    ctx = {
        "specimen": specimen,
        "order": o,
        "patient": o.encounter.patient,
        "items": items,
        "current": current,
        "superseded": superseded,
        "is_imaging": is_imaging,
        "is_lab": is_lab,
        "can_work": can_work,
        "missing": missing if not is_imaging else [],
        "manual_form": manual_form(missing) if can_work and missing and not is_imaging else None,
        "imaging_form": imaging_form,
        "sign_form": SignForm(user=user),
        **_sign_state(specimen, user),
    }
    return render(request, "lab/specimen.html", ctx, status=status)


@login_required
@require_GET
def specimen(request: HttpRequest, pk: int) -> HttpResponse:
    return _specimen_page(request, access.get_specimen(request, pk))


def _changeable(specimen: Specimen) -> bool:
    """Results may be repeated, corrected or entered until the report is made from them.

    Once do_sign_report has written the report (a wrong PIN stops it after that, or it
    waits for the second verifier), the report is what gets signed: changing a value
    then would seal a report that no longer matches the results.
    """
    return specimen.status != SpecimenStatus.SIGNED and specimen.report_id is None


def _refuse_if_frozen(request: HttpRequest, specimen: Specimen) -> HttpResponse | None:
    if _changeable(specimen):
        return None
    messages.error(request, _("The report has been made from these results; they can no "
                              "longer be changed here."))  # fmt: skip
    return redirect("lab:specimen", pk=specimen.pk)


def _work_result(request: HttpRequest, pk: int) -> tuple[Result, Specimen]:
    access.require_role(request.user, "lab.work")
    result = get_object_or_404(
        Result.objects.select_related("test"), pk=pk, facility_id=request.user.facility_id,
        specimen__isnull=False,
    )  # fmt: skip
    return result, access.get_specimen(request, result.specimen_id, "lab.work")


@login_required
@require_POST
def repeat(request: HttpRequest, pk: int) -> HttpResponse:
    """Send one test back to the analyzer; the value is kept, set aside."""
    result, specimen = _work_result(request, pk)
    if refused := _refuse_if_frozen(request, specimen):
        return refused
    form = RepeatForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Give the reason for the repeat."))
    else:
        actor = Actor.from_request(request)
        run_step(request, lambda: actions.do_repeat(actor, result, form.cleaned_data["reason"]),
             _("%(test)s sent back for a repeat.") % {"test": result.test_code_sent})  # fmt: skip
    return redirect("lab:specimen", pk=specimen.pk)


@login_required
@require_POST
def correct(request: HttpRequest, pk: int) -> HttpResponse:
    """Correct a value by hand, with the reason; the old value stays, superseded."""
    result, specimen = _work_result(request, pk)
    if refused := _refuse_if_frozen(request, specimen):
        return refused
    form = CorrectForm(request.POST)
    if result.test is None:
        messages.error(request, _("This result has no catalogue test; it cannot be corrected."))
    elif not form.is_valid():
        _form_errors(request, form)
    else:
        actor = Actor.from_request(request)
        c = form.cleaned_data
        run_step(request, lambda: actions.do_manual_result(actor, specimen, result.test, c["value"],
                                                       reason=c["reason"]),
             _("%(test)s corrected.") % {"test": result.test.code})  # fmt: skip
    return redirect("lab:specimen", pk=specimen.pk)


@login_required
@require_POST
def manual(request: HttpRequest, pk: int) -> HttpResponse:
    """Results entered by hand for ordered tests that have none yet."""
    specimen = access.get_specimen(request, pk, "lab.work")
    if refused := _refuse_if_frozen(request, specimen):
        return refused
    done = set(specimen.results.filter(state=ResultState.CURRENT).values_list("test_id", flat=True))
    missing = [
        i.test
        for i in specimen.items.select_related("test")
        if i.test_id not in done and i.status != OrderStatus.CANCELLED
    ]
    form = manual_form(missing, request.POST)
    if not form.is_valid():
        _form_errors(request, form)
        return redirect("lab:specimen", pk=specimen.pk)
    actor = Actor.from_request(request)
    saved = 0
    for test in missing:
        value = form.cleaned_data.get(f"t{test.pk}", "").strip()
        if value and run_step(request, lambda t=test, v=value: actions.do_manual_result(
                actor, specimen, t, v)):  # fmt: skip
            saved += 1
    if saved:
        messages.success(request, _("%(n)s result(s) saved.") % {"n": saved})
    elif not any(v.strip() for v in form.cleaned_data.values()):
        messages.error(request, _("Enter at least one value."))
    return redirect("lab:specimen", pk=specimen.pk)


@login_required
@require_POST
def imaging(request: HttpRequest, pk: int) -> HttpResponse:
    """The examiner's findings, conclusion and images (JPEG/PNG)."""
    specimen = access.get_specimen(request, pk, "lab.work")
    if refused := _refuse_if_frozen(request, specimen):
        return refused
    form = ImagingForm(request.POST)
    files = request.FILES.getlist("images")
    if form.is_valid() and sum(f.size for f in files) > MAX_IMAGE_UPLOAD:
        form.add_error(None, _("The images are too large together (at most 80 MB)."))
    if form.is_valid():
        c = form.cleaned_data
        actor = Actor.from_request(request)
        try:
            actions.do_imaging_report(actor, specimen, findings=c["findings"],
                                      conclusion=c["conclusion"],
                                      images=[(f.name, f.read()) for f in files])  # fmt: skip
        except ValidationError as e:
            form.add_error(None, error_text(e))
        else:
            messages.success(request, _("Report saved."))
            return redirect("lab:specimen", pk=specimen.pk)
    specimen.refresh_from_db()
    return _specimen_page(request, specimen, imaging_form=form, status=422)


@login_required
@require_GET
def image(request: HttpRequest, pk: int, n: int) -> HttpResponse:
    """One attached image of an imaging examination."""
    from benhan.records.storage import StoreError, default_store

    specimen = access.get_specimen(request, pk)
    if not 0 <= n < len(specimen.images):
        raise Http404
    try:
        data = default_store().get(specimen.images[n]["sha256"])
    except StoreError:
        raise Http404 from None
    kind = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
    response = HttpResponse(data, content_type=kind)
    response["Cache-Control"] = "private, max-age=86400"
    return response


def _sign(request: HttpRequest, specimen: Specimen) -> HttpResponse:
    from benhan.records.forms import SignForm

    form = SignForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Enter your signing PIN or code."))
        return redirect("lab:specimen", pk=specimen.pk)
    actor = Actor.from_request(request)
    done = {}

    def step():
        done["specimen"] = actions.do_sign_report(actor, specimen, form.cleaned_data["pin"])

    if run_step(request, step):
        if done["specimen"].status == SpecimenStatus.SIGNED:
            messages.success(request, _("Signed and sealed. The results are in %(dept)s's inbox.")
                             % {"dept": specimen.order.department.name})  # fmt: skip
        else:
            messages.success(request, _("Signed. The report now waits for a second verifier."))
    return redirect("lab:specimen", pk=specimen.pk)


@login_required
@require_POST
def sign(request: HttpRequest, pk: int) -> HttpResponse:
    """Step 3: the technician signs the report; it is sealed and sent to the ward."""
    return _sign(request, access.get_specimen(request, pk, "lab.work"))


@login_required
@require_POST
def verify(request: HttpRequest, pk: int) -> HttpResponse:
    """The second verifier signs a report the technician signed."""
    specimen = access.get_specimen(request, pk, "lab.verify")
    if not _sign_state(specimen, request.user)["waits_verifier"]:
        messages.error(request, _("This report is not waiting for a second verifier."))
        return redirect("lab:specimen", pk=specimen.pk)
    return _sign(request, specimen)


# --- Unmatched results -------------------------------------------------------------------


@login_required
@require_GET
def unmatched(request: HttpRequest) -> HttpResponse:
    access.lab_worklist(request, "unmatched")
    rows = (
        Result.objects.filter(facility_id=request.user.facility_id, state=ResultState.UNMATCHED)
        .select_related("analyzer", "message")
        .defer("message__raw", "message__ack")
        .order_by("-created_at", "-id")[:LOG_LIMIT]
    )
    return render(request, "lab/unmatched.html", {"rows": rows, "form": LinkForm()})


@login_required
@require_POST
def link(request: HttpRequest, pk: int) -> HttpResponse:
    """Attach an unmatched result to the specimen with this accession number."""
    access.require_role(request.user, "lab.work")
    result = get_object_or_404(Result, pk=pk, facility_id=request.user.facility_id)
    form = LinkForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Enter the accession number."))
        return redirect("lab:unmatched")
    accession = form.cleaned_data["accession"].strip()
    found = (
        Specimen.objects.filter(facility_id=request.user.facility_id, accession=accession)
        .values_list("pk", flat=True)
        .first()
    )
    if found is None:
        messages.error(request, _("No specimen has the accession number %(a)s.") % {"a": accession})
        return redirect("lab:unmatched")
    specimen = access.get_specimen(request, found, "lab.work")
    actor = Actor.from_request(request)
    run_step(request, lambda: actions.do_link_unmatched(actor, result, specimen),
         _("Linked to %(a)s.") % {"a": accession})  # fmt: skip
    return redirect("lab:unmatched")


# --- Analyzer messages ----------------------------------------------------------------------


@login_required
@require_GET
def analyzer_log(request: HttpRequest) -> HttpResponse:
    access.require_role(request.user, "lab.work")
    analyzers = list(Analyzer.objects.filter(facility_id=request.user.facility_id))
    form = MessageFilterForm(request.GET or None, analyzers=analyzers)
    qs = (
        AnalyzerMessage.objects.filter(analyzer__facility_id=request.user.facility_id)
        .select_related("analyzer")
        .defer("raw", "ack")
    )
    if form.is_valid():
        if form.cleaned_data["analyzer"]:
            qs = qs.filter(analyzer_id=form.cleaned_data["analyzer"])
        if form.cleaned_data["outcome"]:
            qs = qs.filter(outcome=form.cleaned_data["outcome"])
    ctx = {"form": form, "rows": qs[:LOG_LIMIT], "limit": LOG_LIMIT}
    return render(request, "lab/analyzers.html", ctx)


_CONTROL_NAMES = {
    0x02: "STX", 0x03: "ETX", 0x04: "EOT", 0x05: "ENQ", 0x06: "ACK", 0x0A: "LF", 0x0B: "VT",
    0x0D: "CR", 0x15: "NAK", 0x17: "ETB", 0x1C: "FS", 0x1D: "GS", 0x1E: "RS", 0x09: "TAB",
}  # fmt: skip


def visible(raw: bytes) -> list[tuple[str, bool]]:
    """Raw bytes as text (UTF-8, bad bytes replaced) in pieces: (text, False) or a
    control character's name (e.g. "<CR>", True). A line break follows <CR> and <LF>
    so segments and records read one per line."""
    out: list[tuple[str, bool]] = []
    text = []
    for ch in raw.decode("utf-8", errors="replace"):
        code = ord(ch)
        if code < 0x20 or code == 0x7F:
            if text:
                out.append(("".join(text), False))
                text = []
            out.append((f"<{_CONTROL_NAMES.get(code, f'0x{code:02X}')}>", True))
            if code in (0x0A, 0x0D):
                out.append(("\n", False))
        else:
            text.append(ch)
    if text:
        out.append(("".join(text), False))
    return out


@login_required
@require_GET
def message(request: HttpRequest, pk: int) -> HttpResponse:
    """One analyzer message as received, control characters made visible, and our answer."""
    access.require_role(request.user, "lab.work")
    msg = get_object_or_404(
        AnalyzerMessage.objects.select_related("analyzer"),
        pk=pk, analyzer__facility_id=request.user.facility_id,
    )  # fmt: skip
    patients = {
        r.specimen.order.encounter.patient
        for r in msg.rows.filter(specimen__isnull=False).select_related(
            "specimen__order__encounter__patient"
        )
    }
    access.audit(request, "lab.view", obj=msg,
                 patient=next(iter(patients)) if len(patients) == 1 else None)  # fmt: skip
    raw = bytes(msg.raw)
    if request.GET.get("download"):
        response = HttpResponse(raw, content_type="application/octet-stream")
        response["Content-Disposition"] = f'attachment; filename="message-{msg.pk}.bin"'
        return response
    ctx = {
        "msg": msg,
        "raw": visible(raw[:RAW_SHOWN]),
        "truncated": len(raw) > RAW_SHOWN,
        "ack": visible(bytes(msg.ack)[:RAW_SHOWN]),
        "results": msg.rows.select_related("test", "specimen").order_by("id")[:LOG_LIMIT],
    }
    return render(request, "lab/message.html", ctx)


# --- The wards' inbox ------------------------------------------------------------------------


def _visible_notices(user):
    """Notices to the user's departments, and those addressed to the user personally."""
    return ResultNotice.objects.filter(facility_id=user.facility_id).filter(
        Q(department_id__in=user.department_ids(), user__isnull=True) | Q(user=user)
    )


def unread_counts(user) -> tuple[int, bool]:
    """(specimens with unread results, any of them critical): one COUNT query.

    A critical result gives the ordering doctor a personal notice besides the
    department's: counted once, by specimen."""
    c = (
        _visible_notices(user)
        .filter(read_at__isnull=True)
        .aggregate(n=Count("specimen_id", distinct=True), crit=Count("id", filter=Q(critical=True)))
    )
    return c["n"], bool(c["crit"])


@login_required
@require_GET
def inbox(request: HttpRequest) -> HttpResponse:
    """Signed results for my departments (and critical values for me), unread first."""
    access.lab_worklist(request, "inbox", "lab.inbox")
    user = request.user
    notices = (
        _visible_notices(user)
        .select_related("specimen__order__encounter__patient", "department", "read_by",
                        "specimen__order__ordered_by")
        .order_by(F("read_at").asc(nulls_first=True), "-critical", "-created_at")[: 2 * LIST_LIMIT]
    )  # fmt: skip
    rows, seen = [], {}
    for n in notices:  # one row per specimen: the personal notice joins the department's
        row = seen.get(n.specimen_id)
        if row is None:
            n.personal = n.user_id == user.pk
            seen[n.specimen_id] = n
            rows.append(n)
        elif n.user_id == user.pk:
            row.personal = True
    rows.sort(key=lambda n: (n.read_at is not None, not n.critical, -n.created_at.timestamp()))
    return render(request, "lab/inbox.html", {"rows": rows[:LIST_LIMIT]})


@login_required
@require_GET
def inbox_open(request: HttpRequest, pk: int) -> HttpResponse:
    """Mark the notice read (with the other notices of the same specimen that I see)
    and open the results."""
    access.require_role(request.user, "lab.inbox")
    user = request.user
    notice = get_object_or_404(_visible_notices(user), pk=pk)
    with transaction.atomic():
        _visible_notices(user).filter(specimen_id=notice.specimen_id,
                                      read_at__isnull=True).update(
            read_at=timezone.now(), read_by=user)  # fmt: skip
    return redirect("lab:specimen", pk=notice.specimen_id)


@login_required
@require_GET
def inbox_count(request: HttpRequest) -> HttpResponse:
    """htmx, every 10 s: the badge in the top bar."""
    access.require_role(request.user, "lab.inbox")
    _not_activity(request)
    n, critical = unread_counts(request.user)
    response = render(request, "lab/_badge.html", {"n": n, "critical": critical})
    response["Cache-Control"] = "no-store"
    return response


def _not_activity(request: HttpRequest) -> None:
    """The badge polls every 10 s: that is not the user at work, and must not keep an
    unattended screen signed in. benhan.accounts.middleware.IdleTimeoutMiddleware has
    just stored "now" as the last activity: put back the time the session had."""
    session = request.session
    if not session.modified or session.session_key is None:
        return
    stored = session.__class__(session.session_key).load()
    if "last_seen" in stored:
        session["last_seen"] = stored["last_seen"]
        session.modified = False
