"""Laboratory writes: order, collect, review (repeat, correct, enter by hand, link an
unmatched result), sign. Each runs in a transaction with its audit event.

Results arriving from analyzers are written by benhan.lab.ingest (no user: the
analyzer is the author, the raw message is kept).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from benhan.accounts.models import Counter, Role
from benhan.audit.chain import Actor, record
from benhan.lab import catalogue
from benhan.lab.accession import next_accession
from benhan.lab.models import (
    LabOrder,
    LabTest,
    OrderItem,
    OrderStatus,
    PanelMember,
    Result,
    ResultState,
    Specimen,
    SpecimenStatus,
    SpecimenType,
)


def expand(tests: list[LabTest]) -> list[tuple[LabTest, LabTest | None]]:
    """Panels into their member tests: [(test, panel or None)], each test once."""
    out, seen = [], set()
    for t in tests:
        members = (
            [m.test for m in PanelMember.objects.filter(panel=t).select_related("test")]
            if t.is_panel
            else [t]
        )
        for m in members:
            if m.pk not in seen:
                seen.add(m.pk)
                out.append((m, t if t.is_panel else None))
    return out


@transaction.atomic
def do_order(actor: Actor, encounter, tests: list[LabTest], *, priority: str = "routine",
             note: str = "") -> LabOrder:  # fmt: skip
    """Order tests and panels on an open encounter; the order joins the record."""
    if not tests:
        raise ValidationError(_("Choose at least one test."))
    if not encounter.is_open:
        raise ValidationError(_("This encounter has ended; tests can no longer be ordered."))
    if any(t.facility_id != encounter.facility_id or not t.active for t in tests):
        raise ValidationError(_("A test chosen is not in this facility's catalogue."))
    year = timezone.localdate().year
    seq = Counter.next_value(encounter.facility, f"laborder-{year}")
    number = f"XN{year % 100:02d}-{seq:06d}"
    order = LabOrder.objects.create(
        facility_id=encounter.facility_id, encounter=encounter, number=number,
        department_id=encounter.department_id, ordered_by=actor.user, ordered_at=timezone.now(),
        priority=priority, note=note.strip()[:500],
    )  # fmt: skip
    items = [OrderItem(order=order, test=t, panel=p) for t, p in expand(tests)]
    OrderItem.objects.bulk_create(items)
    record(actor, "lab.order", obj=order, patient=encounter.patient,
           detail={"number": order.number, "tests": [i.test.code for i in items],
                   "priority": priority})  # fmt: skip
    return order


@transaction.atomic
def do_collect(actor: Actor, order: LabOrder) -> list[Specimen]:
    """Step 1: the sample is taken. One specimen (tube) per specimen type, each with an
    accession number; an imaging test gets its own accession number too."""
    order = LabOrder.objects.select_for_update().get(pk=order.pk)
    if order.status == OrderStatus.CANCELLED:
        raise ValidationError(_("This order was cancelled."))
    items = list(order.items.select_related("test").filter(specimen__isnull=True))
    if not items:
        raise ValidationError(_("Every test of this order already has its sample."))
    groups: dict[Any, list[OrderItem]] = defaultdict(list)
    for item in items:
        key = item.test.pk if item.test.is_imaging else item.test.specimen_type
        groups[key].append(item)
    now = timezone.now()
    specimens = []
    for key, group in groups.items():
        specimen = Specimen.objects.create(
            facility_id=order.facility_id, order=order, accession=next_accession(order.facility),
            specimen_type=SpecimenType.NONE if group[0].test.is_imaging else key,
            collected_at=now, collected_by=actor.user,
        )  # fmt: skip
        OrderItem.objects.filter(pk__in=[i.pk for i in group]).update(
            specimen=specimen, status=OrderStatus.COLLECTED
        )
        specimens.append(specimen)
    order.status = OrderStatus.COLLECTED
    order.save(update_fields=["status"])
    record(actor, "lab.collect", obj=order, patient=order.encounter.patient,
           detail={"accessions": [s.accession for s in specimens]})  # fmt: skip
    return specimens


# --- Results: interpretation and status ----------------------------------------------


def patient_facts(specimen: Specimen) -> tuple[str, date | None, date]:
    patient = specimen.order.encounter.patient
    return facts_for(patient.sex, patient.birth_date, patient.birth_year, specimen.collected_at)


def facts_for(sex: str, birth_date: date | None, birth_year: int | None,
              collected_at: datetime) -> tuple[str, date | None, date]:  # fmt: skip
    """What the reference ranges depend on: sex, birth date (1 July when only the year
    is known) and the day the specimen was taken."""
    birth = birth_date or (date(birth_year, 7, 1) if birth_year else None)
    return sex, birth, timezone.localdate(collected_at)


def apply_interpretation(result: Result, test: LabTest | None, facts, ranges=None) -> None:
    """Fill value_num, comparator, reference range (if the analyzer gave none),
    interpretation and critical from the catalogue."""
    result.value_num, result.comparator = catalogue.parse_value(result.value)
    rng = None
    if test is not None:
        sex, birth, on = facts
        rng = catalogue.range_for(test, sex, birth, on, ranges)
        if not result.reference_range and rng is not None:
            result.reference_range = rng.display
    result.interpretation, result.critical = catalogue.interpret(
        test, rng, result.value_num, result.comparator
    )
    # A text range ("Âm tính"): anything else is abnormal.
    normal_words = (rng.text.lower(), "neg", "negative", "-") if rng is not None else ()
    if rng is not None and rng.text and result.value_num is None:
        result.interpretation = "" if result.value.strip().lower() in normal_words else "A"


def status_for(ordered: set[int], done: set[int]) -> str:
    """COLLECTED → PARTIAL → COMPLETE: which ordered tests have a current result. The
    one rule, for a single specimen here and for a batch in benhan.lab.ingest."""
    if ordered and ordered <= done:
        return SpecimenStatus.COMPLETE
    if ordered & done:
        return SpecimenStatus.PARTIAL
    return SpecimenStatus.COLLECTED


def refresh_status(specimen: Specimen) -> str:
    """The specimen's status from its ordered tests and current results; the order
    moves to RESULTED with its first result."""
    if specimen.status == SpecimenStatus.SIGNED:
        return specimen.status
    # .order_by(): the models' default ordering would join tables for nothing here.
    items = specimen.items.exclude(status=OrderStatus.CANCELLED).order_by()
    current = specimen.results.filter(state=ResultState.CURRENT).order_by()
    status = status_for(set(items.values_list("test_id", flat=True)),
                        set(current.values_list("test_id", flat=True)))  # fmt: skip
    if status != specimen.status:
        Specimen.objects.filter(pk=specimen.pk).update(status=status)
        specimen.status = status
    if status != SpecimenStatus.COLLECTED:
        LabOrder.objects.filter(pk=specimen.order_id, status=OrderStatus.COLLECTED).update(
            status=OrderStatus.RESULTED
        )
    return status


def _check_open(specimen: Specimen) -> None:
    if specimen.status == SpecimenStatus.SIGNED:
        raise ValidationError(_("This specimen's results are signed; amend the report instead."))
    if specimen.report_id and specimen.report.versions.filter(signatures__isnull=False).exists():
        raise ValidationError(
            _("The technician has signed the report; it waits for the second verifier. "
              "Results cannot change now.")
        )  # fmt: skip


@transaction.atomic
def do_manual_result(actor: Actor, specimen: Specimen, test: LabTest, value: str,
                     *, reason: str = "") -> Result:  # fmt: skip
    """A result entered by hand (a manual method, or an analyzer without interface).
    A current result for the same test is superseded, with a reason."""
    specimen = Specimen.objects.select_for_update().get(pk=specimen.pk)
    _check_open(specimen)
    value = value.strip()
    if not value:
        raise ValidationError(_("Enter the value."))
    item = specimen.items.filter(test=test).first()
    if item is None:
        raise ValidationError(_("This test was not ordered on this specimen."))
    previous = specimen.results.filter(test=test, state=ResultState.CURRENT).first()
    if previous is not None and len(reason.strip()) < 5:
        raise ValidationError(_("Give the reason for changing the result (at least 5 characters)."))
    result = Result(
        facility_id=specimen.facility_id, specimen=specimen, item=item, test=test,
        value=value[:200], unit=test.unit, source="manual", entered_by=actor.user,
        reason=reason.strip()[:500], supersedes=previous, created_at=timezone.now(),
        specimen_id_sent=specimen.accession, test_code_sent=test.code,
    )  # fmt: skip
    apply_interpretation(result, test, patient_facts(specimen))
    result.save()
    if previous is not None:
        Result.objects.filter(pk=previous.pk).update(state=ResultState.SUPERSEDED)
    refresh_status(specimen)
    record(actor, "lab.result_correct" if previous else "lab.result_manual", obj=specimen,
           patient=specimen.order.encounter.patient, reason=reason.strip(),
           detail={"test": test.code, "value": value,
                   "previous": previous.value if previous else None})  # fmt: skip
    return result


@transaction.atomic
def do_repeat(actor: Actor, result: Result, reason: str = "") -> Specimen:
    """Send a test back to the analyzer: the current value is set aside (kept), the
    specimen waits for the new one (a host query asks for it again)."""
    if result.specimen_id is None or result.state != ResultState.CURRENT:
        raise ValidationError(_("Only a current result can be repeated."))
    specimen = Specimen.objects.select_for_update().get(pk=result.specimen_id)
    _check_open(specimen)
    if result.state != ResultState.CURRENT:
        raise ValidationError(_("Only a current result can be repeated."))
    Result.objects.filter(pk=result.pk).update(state=ResultState.SUPERSEDED)
    refresh_status(specimen)
    record(actor, "lab.result_repeat", obj=specimen, patient=specimen.order.encounter.patient,
           reason=reason.strip(), detail={"test": result.test.code if result.test else "",
                                          "value": result.value})  # fmt: skip
    return specimen


@transaction.atomic
def do_link_unmatched(actor: Actor, result: Result, specimen: Specimen) -> Result:
    """Attach a result that came with an unknown specimen id to the right specimen."""
    from benhan.lab.models import AnalyzerCode

    result = Result.objects.select_for_update().get(pk=result.pk)
    specimen = Specimen.objects.select_for_update().get(pk=specimen.pk)
    if result.state != ResultState.UNMATCHED:
        raise ValidationError(_("This result is not in the unmatched queue."))
    _check_open(specimen)
    test = result.test
    if test is None and result.analyzer_id:
        code = AnalyzerCode.objects.filter(analyzer_id=result.analyzer_id,
                                           code=result.test_code_sent).first()  # fmt: skip
        test = code.test if code else None
    item = specimen.items.filter(test=test).first() if test else None
    if item is None:
        raise ValidationError(_("This test was not ordered on that specimen."))
    previous = specimen.results.filter(test=test, state=ResultState.CURRENT).first()
    result.specimen, result.item, result.test = specimen, item, test
    result.state = ResultState.CURRENT
    result.supersedes = previous
    result.entered_by = actor.user
    apply_interpretation(result, test, patient_facts(specimen))
    result.save()
    if previous is not None:
        Result.objects.filter(pk=previous.pk).update(state=ResultState.SUPERSEDED)
    refresh_status(specimen)
    record(actor, "lab.result_link", obj=specimen, patient=specimen.order.encounter.patient,
           detail={"result": result.pk, "specimen_id_sent": result.specimen_id_sent,
                   "accession": specimen.accession})  # fmt: skip
    return result


# --- Step 3: sign, seal, send ------------------------------------------------------------


_FLAG_TEXT = {"L": "L", "H": "H", "A": "A"}


def report_rows(specimen: Specimen) -> list[dict[str, str]]:
    """The current results of a specimen as the report prints them, in catalogue order."""
    rows = []
    results = (specimen.results.filter(state=ResultState.CURRENT)
               .select_related("test", "analyzer").order_by("test__sort_order", "id"))  # fmt: skip
    for r in results:
        flag = _FLAG_TEXT.get(r.interpretation, "")
        if r.critical:
            flag = (flag or "H") + "*"
        rows.append({
            "code": r.test.code if r.test else r.test_code_sent,
            "name": r.test.name if r.test else r.test_name_sent,
            "value": r.value.replace("|", "/"), "unit": (r.unit or (r.test.unit if r.test else "")),
            "range": r.reference_range.replace("|", "/"), "flag": flag,
            "method": r.analyzer.name if r.analyzer else "Thủ công",
        })  # fmt: skip
    return rows


def _table(rows: list[dict[str, str]], columns: tuple[str, ...]) -> str:
    return "\n".join(" | ".join(row.get(c, "").replace("\n", " ") for c in columns) for row in rows)


def report_form(specimen: Specimen) -> str:
    items = list(specimen.items.select_related("test"))
    if items and items[0].test.is_imaging:
        return "imaging_report"
    return "lab_report_verified" if any(i.test.needs_verifier for i in items) else "lab_report"


def _report_data(specimen: Specimen, form_code: str) -> dict[str, Any]:
    from benhan.records import formtypes

    order = specimen.order
    ordered = f"{order.ordered_by.full_name} · {order.department.name}"
    if form_code == "imaging_report":
        exam = ", ".join(i.test.name for i in specimen.items.select_related("test"))
        return {"accession": specimen.accession, "exam": exam, "ordered": ordered,
                "findings": specimen.findings, "conclusion": specimen.conclusion,
                "images": "\n".join(i["sha256"] for i in specimen.images)}  # fmt: skip
    columns = formtypes.get(form_code).field("results").columns
    return {
        "accession": specimen.accession,
        "specimen": specimen.get_specimen_type_display(),
        "collected_at": timezone.localtime(specimen.collected_at).strftime("%d/%m/%Y %H:%M"),
        "ordered": ordered,
        "results": _table(report_rows(specimen), columns),
        "note": specimen.conclusion,
    }


def check_signable(specimen: Specimen) -> None:
    if specimen.status == SpecimenStatus.SIGNED:
        raise ValidationError(_("Already signed."))
    is_imaging = specimen.specimen_type == SpecimenType.NONE
    if is_imaging:
        if not specimen.findings.strip() or not specimen.conclusion.strip():
            raise ValidationError(_("Write the findings and the conclusion before signing."))
    elif specimen.status != SpecimenStatus.COMPLETE:
        raise ValidationError(_("Some ordered tests have no result yet."))


def do_sign_report(actor: Actor, specimen: Specimen, pin: str) -> Specimen:
    """Step 3: the report is written from the current results, signed with the
    technician's key (or, when a test requires it, waits for a second verifier), sealed
    by the facility, and sent: the ordering department's inbox, the encounter's record,
    the patient app (released), the ordering doctor for a critical value.

    Resumable: if it stopped half-way (a wrong PIN after the report was completed),
    calling it again continues with the same report.
    """
    from benhan.records import actions as records
    from benhan.records.models import DocumentStatus

    specimen = Specimen.objects.select_related("order__encounter__patient", "report").get(
        pk=specimen.pk
    )
    doc = specimen.report
    if doc is None:
        # The technician writes the report: a verifier signs only what is already there.
        if actor.user.role != Role.LAB_TECH:
            raise ValidationError(_("The laboratory technician signs the report first."))
        check_signable(specimen)
        form_code = report_form(specimen)
        rec = records.do_open_record(actor, specimen.order.encounter)
        doc = records.do_create_document(actor, rec, form_code)
        doc = records.do_save_draft(actor, doc, _report_data(specimen, form_code))
        records.do_complete(actor, doc)
        Specimen.objects.filter(pk=specimen.pk).update(report=doc)
    doc.refresh_from_db()
    version = doc.current_version()
    if doc.status == DocumentStatus.COMPLETED and not version.signatures.exists():
        # Written but not signed yet (a wrong PIN, then a correction): the report must
        # say what the results say now. If they changed, it is written again.
        check_signable(specimen)
        fresh = _report_data(specimen, doc.form_type)
        if {k: str(v) for k, v in fresh.items()} != {
            k: str(version.data.get(k, "")) for k in fresh
        }:
            doc = records.do_amend(actor, doc, _("Results changed before signing."))
            doc = records.do_save_draft(actor, doc, fresh)
            records.do_complete(actor, doc)
            doc.refresh_from_db()
    if doc.status == DocumentStatus.COMPLETED:
        records.do_sign(actor, doc, pin)
        doc.refresh_from_db()
    if doc.status == DocumentStatus.SIGNED:
        records.do_seal(actor, doc, automatic=True)
        return _release(actor, specimen)
    return specimen  # waiting for the second verifier


@transaction.atomic
def _release(actor: Actor, specimen: Specimen) -> Specimen:
    """Signed and sealed: mark it, send it to the ward, flag critical values."""
    from benhan.lab.models import ResultNotice

    specimen = Specimen.objects.select_for_update().get(pk=specimen.pk)
    if specimen.status == SpecimenStatus.SIGNED:
        return specimen
    now = timezone.now()
    order = specimen.order
    specimen.status = SpecimenStatus.SIGNED
    specimen.signed_at = specimen.released_at = now
    specimen.save(update_fields=["status", "signed_at", "released_at"])
    specimen.items.exclude(status=OrderStatus.CANCELLED).update(status=OrderStatus.SIGNED)
    if not order.specimens.exclude(status=SpecimenStatus.SIGNED).exists():
        LabOrder.objects.filter(pk=order.pk).update(status=OrderStatus.SIGNED)
    critical = specimen.results.filter(state=ResultState.CURRENT, critical=True).exists()
    notices = [ResultNotice(facility_id=specimen.facility_id, department_id=order.department_id,
                            specimen=specimen, encounter_id=order.encounter_id,
                            critical=critical, created_at=now)]  # fmt: skip
    if critical:
        notices.append(ResultNotice(facility_id=specimen.facility_id, user_id=order.ordered_by_id,
                                    department_id=order.department_id, specimen=specimen,
                                    encounter_id=order.encounter_id, critical=True,
                                    created_at=now))  # fmt: skip
    ResultNotice.objects.bulk_create(notices)
    record(actor, "lab.sign", obj=specimen, patient=order.encounter.patient,
           detail={"accession": specimen.accession, "report": specimen.report.number
                   if specimen.report else None, "critical": critical})  # fmt: skip
    return specimen


IMAGE_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}
MAX_IMAGES = 8


@transaction.atomic
def do_imaging_report(actor: Actor, specimen: Specimen, *, findings: str, conclusion: str,
                      images: list[tuple[str, bytes]] = ()) -> Specimen:  # fmt: skip
    """The examiner's text report and images (JPEG/PNG) for an ultrasound, X-ray or ECG.
    Images are checked (format, size, not a decompression bomb) and stored by hash."""
    from io import BytesIO

    from PIL import Image, UnidentifiedImageError

    from benhan.records.storage import default_store
    from benhan.scans import MAX_PIXELS

    specimen = Specimen.objects.select_for_update().get(pk=specimen.pk)
    _check_open(specimen)
    if specimen.specimen_type != SpecimenType.NONE:
        raise ValidationError(_("This is a laboratory specimen, not an imaging examination."))
    kept = list(specimen.images)
    for name, data in images:
        try:
            with Image.open(BytesIO(data)) as im:
                if im.format not in IMAGE_TYPES:
                    raise ValidationError(_("%(name)s: only JPEG and PNG images can be attached.")
                                          % {"name": name})  # fmt: skip
                if im.width * im.height > MAX_PIXELS:
                    raise ValidationError(_("%(name)s: the image is too large.") % {"name": name})
                im.verify()
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
            raise ValidationError(_("%(name)s is not a readable image.") % {"name": name}) from exc
        kept.append({"sha256": default_store().put(data), "name": name[:100], "size": len(data)})
    if len(kept) > MAX_IMAGES:
        raise ValidationError(_("At most %(n)s images.") % {"n": MAX_IMAGES})
    specimen.findings, specimen.conclusion, specimen.images = (
        findings.strip()[:10000], conclusion.strip()[:2000], kept)  # fmt: skip
    ready = bool(specimen.findings and specimen.conclusion)
    specimen.status = SpecimenStatus.COMPLETE if ready else SpecimenStatus.COLLECTED
    specimen.save(update_fields=["findings", "conclusion", "images", "status"])
    patient = specimen.order.encounter.patient
    shas = [i["sha256"] for i in kept]
    record(actor, "lab.imaging_report", obj=specimen, patient=patient,
           detail={"accession": specimen.accession, "images": shas})  # fmt: skip
    return specimen
