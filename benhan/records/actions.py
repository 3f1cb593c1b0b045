"""The record lifecycle: create, edit, complete, sign, seal, close, amend.

Each action runs in a transaction and writes its audit event. PDFs are written to
the content-addressed store *before* the database points at them, so a crash leaves
at most an unreferenced file, never a row pointing at a missing or half-written PDF;
repeating the action completes it.
"""

from __future__ import annotations

import secrets
from datetime import date
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from benhan.accounts.models import Counter
from benhan.audit.chain import Actor, record
from benhan.records import formtypes, guards
from benhan.records.models import (
    Document,
    DocumentStatus,
    DocumentVersion,
    Record,
    RecordStatus,
    ScannedDocument,
    Signature,
)
from benhan.records.prefill import document_context, prefill

# Lookup codes: no 0/O or 1/I/L, which people misread from paper.
_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def _lookup_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


@transaction.atomic
def do_open_record(actor: Actor, encounter) -> Record:
    existing = Record.objects.filter(encounter=encounter).first()
    if existing is not None:
        return existing
    year = timezone.localdate().year
    seq = Counter.next_value(encounter.facility, f"record-{year}")
    rec = Record.objects.create(
        facility_id=encounter.facility_id,
        encounter=encounter,
        number=f"{year}-{seq:06d}",
        created_at=timezone.now(),
        created_by=actor.user,
    )
    record(actor, "record.open", obj=rec, patient=encounter.patient, detail={"number": rec.number})
    return rec


@transaction.atomic
def do_create_document(actor: Actor, rec: Record, form_code: str) -> Document:
    form = formtypes.get(form_code)
    if rec.encounter.kind not in form.kinds:
        raise ValidationError(_("This form is not used for this kind of encounter."))
    guards.check_record_open(rec)
    count = rec.documents.count()
    now = timezone.now()
    doc = Document.objects.create(
        facility_id=rec.facility_id,
        record=rec,
        form_type=form.code,
        number=f"{rec.number}-{count + 1:02d}",
        draft=prefill(form, rec.encounter),
        lookup_code=_lookup_code(),
        created_at=now,
        created_by=actor.user,
        updated_at=now,
    )
    record(
        actor,
        "document.create",
        obj=doc,
        patient=rec.encounter.patient,
        detail={"form": form.code, "number": doc.number},
    )
    return doc


@transaction.atomic
def do_save_draft(actor: Actor, doc: Document, data: dict[str, Any]) -> Document:
    doc = Document.objects.select_for_update().get(pk=doc.pk)
    guards.check_editable(doc)
    old = doc.draft
    doc.draft = {**old, **data}
    doc.updated_at = timezone.now()
    doc.save(update_fields=["draft", "updated_at"])
    changed = sorted(k for k in data if old.get(k) != data[k])
    if changed:
        record(
            actor,
            "document.edit",
            obj=doc,
            patient=doc.record.encounter.patient,
            detail={"fields": changed},
        )
    return doc


def validate(form: formtypes.FormType, data: dict[str, Any]) -> dict[str, str]:
    """Field name -> problem, for a draft about to be completed."""
    problems = {}
    for f in form.fields:
        value = data.get(f.name)
        if f.required and (value is None or str(value).strip() == ""):
            problems[f.name] = _("Fill in this field to complete the document.")
        elif value is not None and len(str(value)) > f.max_length:
            problems[f.name] = _("Too long.")
    return problems


def do_complete(actor: Actor, doc: Document) -> DocumentVersion:
    """Freeze the draft, render it, store the PDF. The content cannot change after this."""
    from benhan.records.render import render
    from benhan.records.storage import default_store

    form = doc.type
    problems = validate(form, doc.draft)
    if problems:
        raise ValidationError(problems)
    with transaction.atomic():
        doc = Document.objects.select_for_update().get(pk=doc.pk)
        guards.check_editable(doc)
        last = doc.current_version()
        version_no = (last.version + 1) if last else 1
        reason = doc.amendment_reason
        data = dict(doc.draft)
        rendered = render(form.template, document_context(doc, data, version_no))
        sha = default_store().put(rendered.pdf)
        version = DocumentVersion.objects.create(
            document=doc,
            version=version_no,
            data=data,
            amendment_reason=reason,
            completed_at=timezone.now(),
            completed_by=actor.user,
            rendered_sha256=sha,
            current_sha256=sha,
            size=len(rendered.pdf),
            boxes={k: [b.page, b.x1, b.y1, b.x2, b.y2] for k, b in rendered.boxes.items()},
        )
        doc.status = DocumentStatus.COMPLETED
        doc.amendment_reason = ""
        doc.updated_at = timezone.now()
        doc.save(update_fields=["status", "amendment_reason", "updated_at"])
        record(
            actor,
            "document.complete",
            obj=doc,
            patient=doc.record.encounter.patient,
            detail={"version": version_no, "sha256": sha, "reason": reason},
        )
    return version


def do_sign(actor: Actor, doc: Document, pin: str) -> Signature:
    """Add the actor's signature in the next slot they may sign."""
    from benhan.signing.selection import signer_for_user
    from benhan.signing.tsa import get_timestamper

    # Checked before the secret is tried, so a refused signer does not spend PIN attempts;
    # checked again under the row lock below. Read afresh: the caller's copy may be stale.
    doc = Document.objects.select_related("record__encounter").get(pk=doc.pk)
    guards.next_slot_for(doc, doc.current_version(), actor.user)
    # The signer is unlocked outside the transaction: a wrong PIN must count even though
    # nothing is signed.
    with signer_for_user(actor.user, pin) as signer:
        return _sign_locked(actor, doc, signer, get_timestamper(doc.facility))


def _sign_locked(actor: Actor, doc: Document, signer, timestamper) -> Signature:
    with transaction.atomic():
        doc = Document.objects.select_for_update().get(pk=doc.pk)
        version = doc.current_version()
        slot = guards.next_slot_for(doc, version, actor.user)
        stamp = [actor.user.full_name, slot.title.capitalize(), _now_text()]
        sha = _sign_and_store(
            version, signer, field=slot.slot, stamp=stamp, timestamper=timestamper
        )
        sig = Signature.objects.create(
            version=version, slot=slot.slot, signer=actor.user,
            signed_at=timezone.now(), sha256_after=sha,
        )  # fmt: skip
        version.current_sha256 = sha
        version.save(update_fields=["current_sha256"])
        if guards.all_staff_signed(doc, version):
            doc.status = DocumentStatus.SIGNED
            doc.save(update_fields=["status"])
        record(actor, "document.sign", obj=doc, patient=doc.record.encounter.patient,
               detail={"slot": slot.slot, "version": version.version, "sha256": sha})  # fmt: skip
    return sig


def do_seal(actor: Actor, doc: Document) -> Signature:
    """The facility's seal: the last signature; no change is possible after it."""
    from benhan.signing import pades
    from benhan.signing.tsa import get_timestamper

    with transaction.atomic():
        doc = Document.objects.select_for_update().get(pk=doc.pk)
        guards.check_sealable(doc, actor.user)
        version = doc.current_version()
        stamp = [doc.facility.name, _("Facility seal"), _now_text()]
        sha = _sign_and_store(
            version,
            pades.seal_signer(doc.facility),
            field="seal",
            stamp=stamp,
            timestamper=get_timestamper(doc.facility),
            seal=True,
        )
        now = timezone.now()
        sig = Signature.objects.create(
            version=version, slot="seal", signer=actor.user, signed_at=now, sha256_after=sha
        )
        version.current_sha256 = sha
        version.sealed_at = now
        version.save(update_fields=["current_sha256", "sealed_at"])
        doc.status = DocumentStatus.SEALED
        doc.save(update_fields=["status"])
        record(
            actor,
            "document.seal",
            obj=doc,
            patient=doc.record.encounter.patient,
            detail={"version": version.version, "sha256": sha},
        )
    return sig


@transaction.atomic
def do_amend(actor: Actor, doc: Document, reason: str) -> Document:
    """Start a new version from the current one. The signed versions stay as they are."""
    doc = Document.objects.select_for_update().get(pk=doc.pk)
    guards.check_amendable(doc)
    reason = reason.strip()
    if len(reason) < 10:
        raise ValidationError(_("Give the reason for the amendment in at least 10 characters."))
    version = doc.current_version()
    doc.draft = dict(version.data)
    doc.amendment_reason = reason
    doc.status = DocumentStatus.DRAFT
    doc.updated_at = timezone.now()
    doc.save(update_fields=["draft", "amendment_reason", "status", "updated_at"])
    record(
        actor,
        "document.amend",
        obj=doc,
        patient=doc.record.encounter.patient,
        reason=reason,
        detail={"from_version": version.version},
    )
    return doc


@transaction.atomic
def do_close_record(actor: Actor, rec: Record) -> Record:
    """Close a record whose documents are all sealed, and compute its retention date."""
    rec = Record.objects.select_for_update().get(pk=rec.pk)
    guards.check_closable(rec)
    encounter = rec.encounter
    klass = retention_class(rec)
    ended = (encounter.ended_at or timezone.now()).astimezone(timezone.get_current_timezone())
    years = retention_years()[klass]
    rec.status = RecordStatus.CLOSED
    rec.closed_at = timezone.now()
    rec.closed_by = actor.user
    rec.retention_class = klass
    # Counted from the year the episode ended: kept through the end of year + N.
    rec.retain_until = None if years == 0 else date(ended.year + years, 12, 31)
    rec.save(update_fields=["status", "closed_at", "closed_by", "retention_class", "retain_until"])
    record(
        actor,
        "record.close",
        obj=rec,
        patient=encounter.patient,
        detail={"retention_class": klass, "retain_until": rec.retain_until},
    )
    return rec


# --- helpers ------------------------------------------------------------------------

DEFAULT_RETENTION = {"ordinary": 10, "special": 20, "death": 30, "incident": 0}


def retention_years() -> dict[str, int]:
    """Years per retention class; 0 means permanent. BENHAN_RETENTION_YEARS overrides."""
    return {**DEFAULT_RETENTION, **getattr(settings, "RETENTION_YEARS", {})}


def retention_class(rec: Record) -> str:
    """The longest class any of the record's facts or documents calls for."""
    order = ["ordinary", "special", "death", "incident"]
    classes = {"ordinary"}
    if rec.encounter.discharge_outcome == "5":  # died
        classes.add("death")
    for doc in rec.documents.all():
        classes.add(doc.type.retention_class)
    return max(classes, key=lambda c: order.index(c) if c in order else 0)


def _now_text() -> str:
    return timezone.localtime().strftime("%d/%m/%Y %H:%M")


def _sign_and_store(
    version: DocumentVersion,
    signer,
    *,
    field: str,
    stamp: list[str],
    timestamper,
    seal: bool = False,
) -> str:
    from benhan.records.storage import default_store
    from benhan.signing import pades

    store = default_store()
    pdf = store.get(version.current_sha256)
    box = version.boxes.get(field)
    signed = pades.sign_pdf(
        pdf,
        signer=signer,
        field_name=field,
        page=box[0] if box else 0,
        box=tuple(box[1:]) if box else None,
        stamp_lines=stamp,
        reason=stamp[1],
        timestamper=timestamper,
        seal=seal,
    )
    return store.put(signed)


def do_file_scan(
    actor: Actor,
    rec: Record,
    *,
    files: list[tuple[str, bytes]],
    kind: str,
    title: str,
    document_date=None,
    colour: bool = False,
    paper_location: str = "",
    upload_key: str,
) -> ScannedDocument:
    """File paper into a record: photos become one compact PDF; a PDF is checked and kept.

    The originals are stored first and the converted PDF is read back and checked
    against its hash before the row points at it, so nothing sent is ever lost.
    A repeated upload_key (a phone resending after a dropped connection) returns the
    first filing instead of a second one.
    """
    from benhan.records.storage import default_store
    from benhan.scans import ScanError, ScanOptions, check_pdf_upload, process

    earlier = ScannedDocument.objects.filter(upload_key=upload_key).first()
    if earlier is not None:
        return earlier
    guards.check_record_open(rec)
    if not files:
        raise ScanError("empty")
    store = default_store()
    originals = [{"name": name[:200], "sha256": store.put(data), "size": len(data)}
                 for name, data in files]  # fmt: skip
    if len(files) == 1 and files[0][1][:5] == b"%PDF-":
        pdf = check_pdf_upload(files[0][1])
        pages = _pdf_pages(pdf)
    else:
        pdf, info = process(
            [data for _, data in files], ScanOptions(colour=colour), title=title,
            author=rec.facility.name, converted_by=actor.user.full_name,
            converted_at=timezone.localtime().isoformat(timespec="seconds"),
        )  # fmt: skip
        pages = len(info)
    sha = store.put(pdf)
    store.get(sha)  # verified before anything points at it
    with transaction.atomic():
        scan, created = ScannedDocument.objects.get_or_create(
            upload_key=upload_key,
            defaults={
                "facility_id": rec.facility_id, "record": rec, "kind": kind,
                "title": title, "document_date": document_date, "pages": pages,
                "sha256": sha, "size": len(pdf), "originals": originals,
                "paper_location": paper_location, "uploaded_at": timezone.now(),
                "uploaded_by": actor.user,
            },
        )  # fmt: skip
        if created:
            record(actor, "scan.file", obj=scan, patient=rec.encounter.patient,
                   detail={"kind": kind, "pages": pages, "sha256": sha})  # fmt: skip
    return scan


def _pdf_pages(pdf: bytes) -> int:
    from io import BytesIO

    from pyhanko.pdf_utils.reader import PdfFileReader

    return int(PdfFileReader(BytesIO(pdf), strict=False).root["/Pages"]["/Count"]) or 1
