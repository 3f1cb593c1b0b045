from __future__ import annotations

from base64 import b64encode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from benhan.audit import access
from benhan.audit.chain import Actor
from benhan.records import actions, formtypes, guards
from benhan.records.forms import AmendForm, NewDocumentForm, SignForm, draft_form
from benhan.records.models import Document, DocumentStatus, Record


def _may_sign(doc, version, user) -> bool:
    try:
        guards.next_slot_for(doc, version, user)
    except ValidationError:
        return False
    return access.allowed(user, "document.sign")


def error_text(e: ValidationError) -> str:
    return " ".join(e.messages)


def signing_message(e: Exception) -> str:
    """What to tell the user about a signing error, in their language."""
    from benhan.signing import pades, pki

    if isinstance(e, pki.WrongPin):
        return _("Wrong PIN: %(n)s attempts left before your key is locked.") % {
            "n": e.attempts_left
        }
    messages_by_type = [
        (pki.PinLocked, _("Your signing key is locked after too many wrong PINs. "
                          "Ask the administrator to unlock it.")),
        (pki.NoCredential, _("You have no signing certificate yet. "
                             "Ask the administrator to issue one.")),
        (pki.CredentialUnusable, _("Your signing certificate is revoked or expired. "
                                   "Ask the administrator for a new one.")),
        (pki.InvalidPin, _("A signing PIN is 6 to 12 digits.")),
        (pades.DocumentSealed, _("This document is sealed; no signature can be added.")),
    ]  # fmt: skip
    for cls, text in messages_by_type:
        if isinstance(e, cls):
            return text
    return _("The signature could not be made: %(reason)s") % {"reason": e}


@login_required
@require_http_methods(["GET", "POST"])
def encounter_record(request: HttpRequest, encounter_pk: int) -> HttpResponse:
    """The record of an encounter: its documents, and adding one."""
    action = "document.edit" if request.method == "POST" else "record.view"
    encounter = access.get_record_for_encounter(request, encounter_pk, action)
    rec = Record.objects.filter(encounter=encounter).first()
    choices = formtypes.choices_for(encounter.kind)
    form = NewDocumentForm(request.POST or None, choices=choices)
    if request.method == "POST" and form.is_valid():
        actor = Actor.from_request(request)
        try:
            rec = actions.do_open_record(actor, encounter)
            doc = actions.do_create_document(actor, rec, form.cleaned_data["form_type"])
        except ValidationError as e:
            messages.error(request, error_text(e))
        else:
            return redirect("records:document", pk=doc.pk)
    documents = rec.documents.prefetch_related("versions") if rec else []
    from benhan.records.models import ScanKind

    kind = request.GET.get("kind", "")
    scans = rec.scans.select_related("uploaded_by") if rec else []
    if rec and kind in ScanKind.values:
        scans = scans.filter(kind=kind)
    ctx = {
        "encounter": encounter,
        "patient": encounter.patient,
        "record": rec,
        "documents": documents,
        "scans": scans,
        "scan_kinds": ScanKind.choices,
        "kind": kind,
        "can_scan": access.allowed(request.user, "scan.upload"),
        "form": form,
        "can_add": access.allowed(request.user, "document.edit")
        and (rec is None or rec.status == "open"),
    }
    return render(request, "records/record.html", ctx)


@login_required
@require_GET
def document(request: HttpRequest, pk: int) -> HttpResponse:
    doc = access.get_document(request, pk)
    user = request.user
    version = doc.current_version()
    form = draft_form(doc.type, initial=doc.draft) if doc.status == DocumentStatus.DRAFT else None
    slot = guards.next_slot(doc, version)
    ctx = {
        "doc": doc,
        "patient": doc.record.encounter.patient,
        "encounter": doc.record.encounter,
        "form": form,
        "version": version,
        "versions": doc.versions.order_by("-version").prefetch_related(
            "signatures__signer", "signatures__version__document"
        ),
        # What was completed, shown read-only once the draft is frozen.
        "content": [(f.label, version.data.get(f.name, "")) for f in doc.type.fields]
        if version is not None and doc.status != DocumentStatus.DRAFT
        else [],
        "next_slot": slot,
        "can_edit": access.allowed(user, "document.edit") and doc.status == DocumentStatus.DRAFT,
        "can_sign": _may_sign(doc, version, user),
        "can_seal": access.allowed(user, "document.seal") and doc.status == DocumentStatus.SIGNED,
        "can_amend": access.allowed(user, "document.edit")
        and doc.status in (DocumentStatus.SIGNED, DocumentStatus.SEALED, DocumentStatus.COMPLETED),
        "sign_form": SignForm(user=user),
        "amend_form": AmendForm(),
        "patient_signature": getattr(version, "patient_signature", None) if version else None,
    }
    if doc.type.patient_signs and version is not None:
        from benhan.records.paper import paper_token

        try:
            guards.check_patient_signable(doc, version)
        except ValidationError:
            ctx["can_patient_sign"] = False
        else:
            ctx["can_patient_sign"] = access.allowed(user, "document.sign")
        if access.allowed(user, "scan.upload") and doc.status in (
            DocumentStatus.COMPLETED,
            DocumentStatus.SIGNED,
        ):
            ctx["paper_url"] = reverse("paper", args=[paper_token(doc.pk, version.version)])
    return render(request, "records/document.html", ctx)


@login_required
@require_POST
def save_draft(request: HttpRequest, pk: int) -> HttpResponse:
    """Autosave (htmx) or the plain "save draft" button."""
    doc = access.get_document(request, pk, "document.edit")
    form = draft_form(doc.type, data=request.POST)
    htmx = bool(request.headers.get("HX-Request"))
    if not form.is_valid():
        if htmx:
            return render(request, "records/save_status.html", {"error": form.errors}, status=422)
        messages.error(request, _("Some fields are too long; nothing was saved."))
        return redirect("records:document", pk=doc.pk)
    try:
        # Only the fields sent: a partial post never blanks the others.
        sent = {k: v for k, v in form.cleaned_data.items() if k in request.POST}
        doc = actions.do_save_draft(Actor.from_request(request), doc, sent)
    except ValidationError as e:
        if htmx:
            return render(request, "records/save_status.html", {"error": error_text(e)}, status=409)
        messages.error(request, error_text(e))
        return redirect("records:document", pk=doc.pk)
    if htmx:
        return render(request, "records/save_status.html", {"saved_at": timezone.localtime()})
    if "complete" in request.POST:
        return _complete(request, doc)
    messages.success(request, _("Draft saved."))
    return redirect("records:document", pk=doc.pk)


def _complete(request: HttpRequest, doc: Document) -> HttpResponse:
    try:
        actions.do_complete(Actor.from_request(request), doc)
    except ValidationError as e:
        if hasattr(e, "error_dict"):
            labels = {f.name: str(f.label) for f in doc.type.fields}
            for name, errs in e.message_dict.items():
                messages.error(request, f"{labels.get(name, name)}: {' '.join(errs)}")
        else:
            messages.error(request, error_text(e))
    else:
        messages.success(
            request, _("Completed: the content is frozen and the PDF is ready to sign.")
        )
    return redirect("records:document", pk=doc.pk)


@login_required
@require_POST
def complete(request: HttpRequest, pk: int) -> HttpResponse:
    doc = access.get_document(request, pk, "document.edit")
    return _complete(request, doc)


def run_step(request: HttpRequest, step, success: str = "") -> bool:
    """Run one action; its refusal (invalid, or a signing error) becomes an error
    message, its success the `success` message. True when it went through."""
    from benhan.signing.pki import SigningError

    try:
        step()
    except ValidationError as e:
        messages.error(request, error_text(e))
    except SigningError as e:
        messages.error(request, signing_message(e))
    else:
        if success:
            messages.success(request, success)
        return True
    return False


def _act(request: HttpRequest, doc: Document, step, success: str = "") -> HttpResponse:
    """Run one lifecycle step, then back to the document."""
    run_step(request, step, success)
    return redirect("records:document", pk=doc.pk)


@login_required
@require_POST
def sign(request: HttpRequest, pk: int) -> HttpResponse:
    doc = access.get_document(request, pk, "document.sign")
    form = SignForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Enter your signing PIN or code."))
        return redirect("records:document", pk=doc.pk)
    actor = Actor.from_request(request)
    return _act(request, doc, lambda: actions.do_sign(actor, doc, form.cleaned_data["pin"]),
                _("Signed."))  # fmt: skip


@login_required
@require_POST
def seal(request: HttpRequest, pk: int) -> HttpResponse:
    doc = access.get_document(request, pk, "document.seal")
    actor = Actor.from_request(request)
    return _act(request, doc, lambda: actions.do_seal(actor, doc),
                _("Sealed. The document can no longer change."))  # fmt: skip


@login_required
@require_POST
def amend(request: HttpRequest, pk: int) -> HttpResponse:
    doc = access.get_document(request, pk, "document.edit")
    form = AmendForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Give the reason for the amendment in at least 10 characters."))
        return redirect("records:document", pk=doc.pk)
    actor = Actor.from_request(request)
    return _act(request, doc, lambda: actions.do_amend(actor, doc, form.cleaned_data["reason"]))


@login_required
@require_POST
def close_record(request: HttpRequest, pk: int) -> HttpResponse:
    rec = get_object_or_404(Record, pk=pk, facility_id=request.user.facility_id)
    access.get_record_for_encounter(request, rec.encounter_id, "record.close")
    try:
        actions.do_close_record(Actor.from_request(request), rec)
    except ValidationError as e:
        messages.error(request, error_text(e))
    else:
        messages.success(request, _("The record is closed and stored."))
    return redirect("records:encounter", encounter_pk=rec.encounter_id)


@login_required
@require_GET
def pdf(request: HttpRequest, pk: int, version: int) -> HttpResponse:
    """A version's PDF as it stands (with the signatures so far). Audited as a view."""
    return _version_pdf(request, pk, version, print_copy=False)


@login_required
@require_GET
def print_copy(request: HttpRequest, pk: int, version: int) -> HttpResponse:
    """A paper copy: the signed PDF with "printed at … by …" added on every page.

    The electronic original stays as it is; this copy is for printing only (a validator
    would rightly say it was changed after the seal).
    """
    return _version_pdf(request, pk, version, print_copy=True)


def _version_pdf(request: HttpRequest, pk: int, version: int, *, print_copy: bool) -> HttpResponse:
    from benhan.records.render import stamp_print_copy
    from benhan.records.storage import CorruptObject, default_store

    doc = access.get_document(request, pk)
    v = doc.versions.filter(version=version).first()
    if v is None:
        raise Http404
    try:
        data = default_store().get(v.current_sha256)
    except CorruptObject:
        return render(request, "records/corrupt.html", {"doc": doc}, status=500)
    name = f"{doc.number}-v{v.version}"
    if print_copy:
        data = stamp_print_copy(
            data,
            printed_at=timezone.localtime().strftime("%H:%M %d/%m/%Y"),
            printed_by=request.user.full_name,
        )
        access.audit(request, "document.print", obj=doc, patient=doc.record.encounter.patient,
                     detail={"version": v.version})  # fmt: skip
        name += "-ban-in"
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{name}.pdf"'
    return response


@require_GET
def lookup(request: HttpRequest, code: str) -> HttpResponse:
    """The public page the QR code opens: integrity and signers, no clinical content."""
    from benhan.records.storage import CorruptObject, default_store
    from benhan.signing.verify import verify_pdf

    doc = get_object_or_404(
        Document.objects.select_related("record", "facility"), lookup_code=code.upper()
    )
    version = doc.current_version()
    report = None
    corrupt = False
    if version is not None:
        try:
            report = verify_pdf(default_store().get(version.current_sha256))
        except CorruptObject:
            corrupt = True
    can_read = False
    if request.user.is_authenticated and request.user.facility_id == doc.facility_id:
        from benhan.audit.access import patient_access

        can_read = patient_access(request.user, doc.record.encounter.patient).clinical
    ctx = {
        "doc": doc,
        "version": version,
        "report": report,
        "corrupt": corrupt,
        "can_read": can_read,
    }
    return render(request, "records/lookup.html", ctx)


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    """Records created, completed, signed, sealed and stored: totals, by kind, department,
    month; a bar chart in inline SVG; CSV with ?format=csv. Counts only, no patient data."""
    from benhan.encounters.models import EncounterKind
    from benhan.records import stats

    access.require_role(request.user, "records.dashboard")
    data = stats.compute(request.user.facility_id)
    if request.GET.get("format") == "csv":
        return _stats_csv(data)
    months = stats.last_months(12)
    kinds = dict(EncounterKind.choices)

    def row(counter):
        return [counter[s] for s in stats.STAGES]

    ctx = {
        "total": row(data.total),
        "by_kind": [(kinds.get(k, k), row(c)) for k, c in sorted(data.by_kind.items())],
        "by_department": [(k, row(c)) for k, c in sorted(data.by_department.items())],
        "by_month": [(m, row(data.by_month[m])) for m in months],
        "chart": stats.month_chart(data.by_month, months),
    }
    return render(request, "records/dashboard.html", ctx)


def _stats_csv(data) -> HttpResponse:
    import csv

    from benhan.records.stats import STAGES

    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="benhan-records.csv"'
    response.write("\ufeff")  # Excel opens UTF-8 (Vietnamese) correctly with a BOM
    writer = csv.writer(response)
    writer.writerow(["group", "value", *STAGES])
    writer.writerow(["total", "", *(data.total[s] for s in STAGES)])
    for group, rows in (
        ("kind", data.by_kind),
        ("department", data.by_department),
        ("month", data.by_month),
    ):
        for key, counter in sorted(rows.items()):
            writer.writerow([group, key, *(counter[s] for s in STAGES)])
    return response


@login_required
@require_GET
def my_work(request: HttpRequest) -> HttpResponse:
    """Documents waiting for my signature; per department, records not yet complete."""
    user = request.user
    access.require_role(user, "record.view")
    depts = user.department_ids()
    base = Document.objects.filter(facility_id=user.facility_id).select_related(
        "record__encounter__patient", "record__encounter__department", "record__encounter"
    )
    if user.role != "records_officer":
        base = base.filter(record__encounter__stays__department_id__in=depts).distinct()
    waiting = []
    for doc in base.filter(status__in=[DocumentStatus.COMPLETED, DocumentStatus.SIGNED])[:500]:
        version = doc.current_version()
        if doc.status == DocumentStatus.SIGNED:
            if user.role == "records_officer":
                waiting.append((doc, _("Facility seal")))
            continue
        try:
            slot = guards.next_slot_for(doc, version, user)
        except ValidationError:
            continue  # not this user's turn (another role, the attending only, signed already)
        waiting.append((doc, slot.title.capitalize()))
    incomplete = (
        Record.objects.filter(facility_id=user.facility_id, status="open")
        .exclude(documents__isnull=True)
        .filter(
            documents__status__in=[
                DocumentStatus.DRAFT,
                DocumentStatus.COMPLETED,
                DocumentStatus.SIGNED,
            ]
        )
        .select_related("encounter__patient", "encounter__department")
        .distinct()
    )
    if user.role != "records_officer":
        incomplete = incomplete.filter(encounter__department_id__in=depts)
    access.audit(request, "worklist.view", detail={"list": "records"})
    ctx = {
        "waiting": waiting,
        "incomplete": incomplete.order_by("encounter__department__name", "created_at")[:300],
    }
    return render(request, "records/my_work.html", ctx)


# Largest upload accepted in one request (phones send 3–5 MB photos; 50 pages at most).
MAX_UPLOAD_BYTES = 200 * 1024 * 1024


def _chosen_files(request: HttpRequest, none_chosen: str) -> tuple[list, str]:
    """The uploaded files, and what is wrong with them as a whole ("" if nothing)."""
    files = request.FILES.getlist("files")
    if sum(f.size for f in files) > MAX_UPLOAD_BYTES:
        return files, _("The upload is too large (at most 200 MB).")
    return files, "" if files else none_chosen


@login_required
@require_http_methods(["GET", "POST"])
def file_scan(request: HttpRequest, encounter_pk: int) -> HttpResponse:
    """File paper (photos or a PDF) into the encounter's record. Works without JavaScript."""
    import secrets

    from benhan.records.forms import ScanForm
    from benhan.scans import ScanError

    encounter = access.get_record_for_encounter(request, encounter_pk, "scan.upload")
    form = ScanForm(request.POST or None)
    key = (request.POST.get("upload_key") or secrets.token_urlsafe(16))[:64]
    if request.method == "POST" and form.is_valid():
        files, problem = _chosen_files(request, _("Choose the photos of the pages, or a PDF."))
        if problem:
            form.add_error(None, problem)
        else:
            actor = Actor.from_request(request)
            try:
                rec = actions.do_open_record(actor, encounter)
                scan = actions.do_file_scan(
                    actor, rec, files=[(f.name, f.read()) for f in files],
                    kind=form.cleaned_data["kind"], title=form.cleaned_data["title"],
                    document_date=form.cleaned_data["document_date"],
                    colour=form.cleaned_data["colour"],
                    paper_location=form.cleaned_data["paper_location"], upload_key=key,
                )  # fmt: skip
            except ScanError as e:
                form.add_error(None, e.message)
            except ValidationError as e:
                form.add_error(None, e)
            else:
                messages.success(request, _("Filed: %(title)s, %(pages)s page(s).")
                                 % {"title": scan.title, "pages": scan.pages})  # fmt: skip
                return _upload_done(request, reverse("records:encounter", args=[encounter.pk]))
    if request.method == "POST" and _is_upload_js(request):
        errors = [str(m) for field_errors in form.errors.values() for m in field_errors]
        return _upload_refused(errors)
    ctx = {"form": form, "encounter": encounter, "patient": encounter.patient, "key": key}
    return render(request, "records/file_scan.html", ctx,
                  status=422 if request.method == "POST" else 200)  # fmt: skip


@login_required
@require_GET
def scan_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    from benhan.records.models import ScannedDocument
    from benhan.records.storage import CorruptObject, default_store

    scan = get_object_or_404(ScannedDocument, pk=pk, facility_id=request.user.facility_id)
    encounter = access.get_record_for_encounter(request, scan.record.encounter_id)
    access.audit(request, "scan.view", obj=scan, patient=encounter.patient)
    try:
        data = default_store().get(scan.sha256)
    except CorruptObject:
        return render(request, "records/corrupt.html", {"doc": scan}, status=500)
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="scan-{scan.pk}.pdf"'
    return response


# --- Uploads from upload.js ---------------------------------------------------------


def _is_upload_js(request: HttpRequest) -> bool:
    return request.headers.get("X-Benhan-Upload") == "1"


def _upload_done(request: HttpRequest, url: str) -> HttpResponse:
    """Success: a redirect for a plain form, JSON for static/js/upload.js."""
    if _is_upload_js(request):
        return JsonResponse({"redirect": url})
    return redirect(url)


def _upload_refused(errors: list[str], status: int = 422) -> JsonResponse:
    return JsonResponse({"errors": [str(e) for e in errors]}, status=status)


# --- Signing with the patient (tablet) ------------------------------------------------


def _patient_sign_context(request, doc, form) -> dict:
    version = doc.current_version()
    from benhan.records.patient_sign import page_count
    from benhan.records.storage import default_store

    pages = page_count(default_store().get(version.current_sha256))
    return {
        "doc": doc, "version": version, "patient": doc.record.encounter.patient,
        "encounter": doc.record.encounter, "form": form, "pages": range(1, pages + 1),
        "needs_pin": version.signatures.exists(),
    }  # fmt: skip


@login_required
@require_http_methods(["GET", "POST"])
def patient_sign(request: HttpRequest, pk: int) -> HttpResponse:
    """The tablet page: the exact document as page images, the pad, who signs and how
    they were identified; or the patient's refusal, witnessed."""
    from benhan.records.forms import PatientSignForm
    from benhan.records.patient_sign import DrawingError, parse_strokes
    from benhan.signing.pki import SigningError

    doc = access.get_document(request, pk, "document.sign")
    version = doc.current_version()
    try:
        guards.check_patient_signable(doc, version)
    except ValidationError as e:
        messages.error(request, error_text(e))
        return redirect("records:document", pk=doc.pk)
    data = version.data
    initial = {"shown": version.current_sha256, "outcome": "signed"}
    if data.get("representative_name"):
        initial |= {"signer": "representative", "representative_name": data["representative_name"],
                    "relation": data.get("representative_relation", "")}  # fmt: skip
    form = PatientSignForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        c = form.cleaned_data
        try:
            strokes = None
            if c["outcome"] == "signed":
                if not c["strokes"]:
                    raise ValidationError(_("The patient has not signed in the box yet."))
                strokes = parse_strokes(c["strokes"], c["canvas"])
            signing = actions.PatientSigning(
                shown_sha256=c["shown"], outcome=c["outcome"], identity=c["identity"],
                identity_detail=c["identity_detail"],
                by_representative=c["signer"] == "representative",
                representative_name=c["representative_name"], relation=c["relation"],
                refusal_reason=c["refusal_reason"], strokes=strokes,
                client_time=c["client_time"], tz_offset=c["tz_offset"], pointer=c["pointer"],
                screen=c["screen"], user_agent=request.headers.get("User-Agent", ""),
            )  # fmt: skip
            actions.do_patient_sign(Actor.from_request(request), doc, signing, c["pin"])
        except DrawingError as e:
            form.add_error(None, str(e))
        except ValidationError as e:
            for m in e.messages:
                form.add_error(None, m)
        except SigningError as e:
            form.add_error("pin", signing_message(e))
        else:
            return redirect("records:patient_signed", pk=doc.pk)
    refuse_errors: list[str] = []
    if request.method == "POST" and request.POST.get("outcome") == "refused":
        # The refusal's problems go with the refusal form, which keeps what was typed.
        refuse_errors = [str(m) for errs in form.errors.values() for m in errs]
        form = PatientSignForm(initial=initial)
    ctx = _patient_sign_context(request, doc, form)
    ctx["refuse_errors"] = refuse_errors
    ctx["refuse"] = request.POST if refuse_errors else {}
    # Put the drawing back after a refusal that was not about it (a mistyped ID number),
    # unless the document changed meanwhile: then the patient must see it again.
    if request.method == "POST" and request.POST.get("shown") == version.current_sha256:
        ctx["restore"] = {
            k: request.POST.get(k, "")[:2_000_000] for k in ("strokes", "canvas", "pointer")
        }
    status = 422 if request.method == "POST" else 200
    return render(request, "records/patient_sign.html", ctx, status=status)


@login_required
@require_GET
def patient_signed(request: HttpRequest, pk: int) -> HttpResponse:
    """After the patient signed: their copy to print, or to take on their own phone."""
    from benhan.records.paper import copy_url
    from benhan.records.render import qr_svg

    doc = access.get_document(request, pk)
    version = doc.current_version()
    ps = getattr(version, "patient_signature", None) if version else None
    if ps is None:
        return redirect("records:document", pk=doc.pk)
    ctx = {
        "doc": doc, "version": version, "ps": ps, "patient": doc.record.encounter.patient,
        "encounter": doc.record.encounter, "copy_hours": settings.PATIENT_COPY_HOURS,
    }  # fmt: skip
    if settings.PATIENT_COPY_HOURS > 0:
        url = ctx["copy_url"] = copy_url(doc.pk, version.version)
        ctx["copy_qr"] = "data:image/svg+xml;base64," + b64encode(qr_svg(url).encode()).decode()
    return render(request, "records/patient_signed.html", ctx)


@login_required
@require_GET
def page_image(request: HttpRequest, pk: int, version: int, page: int) -> HttpResponse:
    """One page of a version's PDF as it stands, as an image (the tablet shows these)."""
    from benhan.records.patient_sign import page_image as render_page
    from benhan.records.storage import default_store

    doc = access.get_document(request, pk)
    v = doc.versions.filter(version=version).first()
    if v is None:
        raise Http404
    key = (v.current_sha256, page)
    image = _PAGE_CACHE.get(key)
    if image is None:
        try:
            image = render_page(default_store().get(v.current_sha256), page - 1)
        except IndexError:
            raise Http404 from None
        if len(_PAGE_CACHE) > 64:
            _PAGE_CACHE.clear()
        _PAGE_CACHE[key] = image
    response = HttpResponse(image, content_type="image/webp")
    # The URL names the exact bytes (?h=<sha>): safe to keep, never shared with others.
    response["Cache-Control"] = "private, max-age=86400"
    return response


_PAGE_CACHE: dict[tuple[str, int], bytes] = {}


@require_GET
def patient_copy(request: HttpRequest, token: str) -> HttpResponse:
    """The patient's own copy, by the link (QR) shown after signing; no account needed."""
    from benhan.records.storage import CorruptObject, default_store

    try:
        doc, version = access.get_document_for_patient_copy(request, token)
    except access.LinkError as e:
        return render(request, "records/link_refused.html", {"message": e.message},
                      status=e.status)  # fmt: skip
    try:
        data = default_store().get(version.current_sha256)
    except CorruptObject:
        return render(request, "records/corrupt.html", {"doc": doc}, status=500)
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{doc.number}-v{version.version}.pdf"'
    response["Cache-Control"] = "no-store"
    return response


# --- Signed paper, by the QR code on the form -----------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def paper_upload(request: HttpRequest, token: str) -> HttpResponse:
    """The upload page a paper form's QR code opens: photos of exactly that document."""
    import secrets

    from benhan.records.forms import PaperForm
    from benhan.scans import ScanError

    try:
        doc, version_no = access.get_document_for_paper(request, token)
    except access.LinkError as e:
        if _is_upload_js(request):
            return _upload_refused([e.message], status=e.status)
        return render(request, "records/link_refused.html",
                      {"message": e.message, "doc": e.document}, status=e.status)  # fmt: skip
    key = (request.POST.get("upload_key") or "")[:64]
    try:
        # A phone resending an upload that was filed (and so sealed the document) is
        # answered as the first time was, not refused as "already sealed".
        if key and actions.filed_paper(doc, key) is not None:
            messages.success(request, _("The signed paper is filed and sealed."))
            return _upload_done(request, reverse("records:document", args=[doc.pk]))
        guards.check_paper_fileable(doc, version_no)
    except ValidationError as e:
        if _is_upload_js(request):
            return _upload_refused(e.messages, status=409)
        return render(request, "records/link_refused.html",
                      {"message": error_text(e), "doc": doc}, status=409)  # fmt: skip
    form = PaperForm(request.POST or None)
    key = key or secrets.token_urlsafe(16)
    if request.method == "POST":
        files, problem = _chosen_files(
            request, _("Photograph the pages, or choose the photos or a PDF.")
        )
        errors: list[str] = []
        if not form.is_valid():
            errors = [str(m) for field_errors in form.errors.values() for m in field_errors]
        elif problem:
            errors = [problem]
        else:
            try:
                actions.do_file_paper(
                    Actor.from_request(request), doc, version_no,
                    files=[(f.name, f.read()) for f in files],
                    paper_location=form.cleaned_data["paper_location"],
                    colour=form.cleaned_data["colour"], deskew=form.cleaned_data["deskew"],
                    upload_key=key,
                )  # fmt: skip
            except ScanError as e:
                errors = [e.message]
            except ValidationError as e:
                errors = e.messages
            else:
                messages.success(request, _("The signed paper is filed and sealed."))
                return _upload_done(request, reverse("records:document", args=[doc.pk]))
        if _is_upload_js(request):
            return _upload_refused(errors)
        for m in errors:
            if m not in form.non_field_errors():
                form.add_error(None, m)
    ctx = {"form": form, "doc": doc, "version_no": version_no, "key": key,
           "patient": doc.record.encounter.patient, "encounter": doc.record.encounter}  # fmt: skip
    return render(request, "records/paper_upload.html", ctx,
                  status=422 if request.method == "POST" else 200)  # fmt: skip
