"""The record lifecycle: create, edit, complete, sign, seal, close, amend.

Each action runs in a transaction and writes its audit event. PDFs are written to
the content-addressed store *before* the database points at them, so a crash leaves
at most an unreferenced file, never a row pointing at a missing or half-written PDF;
repeating the action completes it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
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


def do_seal(actor: Actor, doc: Document, *, automatic: bool = False) -> Signature:
    """The facility's seal: the last signature; no change is possible after it.

    automatic=True: sealed by the system as the last step of another action (a signed
    lab report), not by the records office; every other check still applies.
    """
    from benhan.signing import pades
    from benhan.signing.tsa import get_timestamper

    with transaction.atomic():
        doc = Document.objects.select_for_update().get(pk=doc.pk)
        guards.check_sealable(doc, actor.user, automatic=automatic)
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
            detail={"version": version.version, "sha256": sha, "automatic": automatic},
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

    earlier = _earlier_upload(ScannedDocument.objects.filter(upload_key=upload_key), record=rec)
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
        if _earlier_upload(ScannedDocument.objects.filter(upload_key=upload_key), record=rec):
            return ScannedDocument.objects.get(upload_key=upload_key)
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


# --- The patient's own signature ----------------------------------------------------


@dataclass(frozen=True)
class PatientSigning:
    """What the tablet page collected: who signs, how they were identified, the device."""

    shown_sha256: str
    outcome: str  # PatientSignature.Outcome
    identity: str  # PatientSignature.Identity
    identity_detail: str = ""
    by_representative: bool = False
    representative_name: str = ""
    relation: str = ""
    refusal_reason: str = ""
    strokes: Any = None  # patient_sign.Strokes when signed
    client_time: str = ""
    tz_offset: str = ""
    pointer: str = ""
    screen: str = ""
    user_agent: str = ""


def _check_patient_signing(doc: Document, version: DocumentVersion, s: PatientSigning) -> None:
    from benhan.records.models import PatientSignature

    guards.check_patient_signable(doc, version)
    if s.shown_sha256 != version.current_sha256:
        raise ValidationError(_("The document changed while it was shown (someone signed it). "
                                "Show it to the patient again."))  # fmt: skip
    problems = []
    if s.outcome not in PatientSignature.Outcome.values:
        problems.append(_("Choose whether the patient signs or refuses."))
    if s.identity not in PatientSignature.Identity.values:
        problems.append(_("Say how the signer's identity was checked."))
    detail = s.identity_detail.strip()
    if s.identity == PatientSignature.Identity.CCCD:
        if not (detail.isdigit() and len(detail) == 12):
            problems.append(_("Enter the 12-digit citizen ID number as seen on the card."))
        elif not s.by_representative:
            cccd = doc.record.encounter.patient.cccd
            if cccd and detail != cccd:
                problems.append(_("The number seen does not match the patient's citizen ID on "
                                  "file. Check the card, or the patient's details."))  # fmt: skip
    elif s.identity == PatientSignature.Identity.OTHER and len(detail) < 3:
        problems.append(_("Say how the identity was checked."))
    if s.by_representative and (not s.representative_name.strip() or not s.relation.strip()):
        problems.append(_("Enter the representative's name and relationship to the patient."))
    if s.outcome == PatientSignature.Outcome.REFUSED and len(s.refusal_reason.strip()) < 5:
        problems.append(_("Write the reason the patient gives for refusing."))
    if s.outcome == PatientSignature.Outcome.SIGNED and s.strokes is None:
        problems.append(_("The patient has not signed in the box yet."))
    if problems:
        raise ValidationError(problems)


def _evidence(actor: Actor, doc: Document, version: DocumentVersion, s: PatientSigning,
              shown: bytes, now) -> dict[str, Any]:  # fmt: skip
    from benhan.records import patient_sign

    patient = doc.record.encounter.patient
    user = actor.user
    return {
        "type": patient_sign.EVIDENCE_TYPE,
        "document": {
            "facility": doc.facility.code,
            "number": doc.number,
            "form": doc.form_type,
            "version": version.version,
            "lookup_code": doc.lookup_code,
            "shown_sha256": patient_sign.sha256(shown),
            "shown_size": len(shown),
        },
        "text_shown": patient_sign.page_texts(shown),
        "outcome": s.outcome,
        "patient": {"name": patient.full_name, "mrn": patient.mrn},
        "signer": {
            "representative": s.by_representative,
            "name": s.representative_name.strip() if s.by_representative else patient.full_name,
            "relation": s.relation.strip() if s.by_representative else "",
        },
        "identity": {"method": s.identity, "detail": s.identity_detail.strip()},
        "refusal_reason": s.refusal_reason.strip(),
        "witness": {
            "id": user.pk,
            "username": user.get_username(),
            "name": user.full_name,
            "role": user.role,
        },
        "time": {
            "server": now.isoformat(timespec="milliseconds"),
            "client": s.client_time[:40],
            "client_tz_offset_min": s.tz_offset[:6],
        },
        "device": {
            "user_agent": s.user_agent[:500],
            "pointer": s.pointer[:20],
            "screen": s.screen[:40],
            "ip": actor.ip or "",
            "canvas": {"w": s.strokes.width, "h": s.strokes.height, "ratio": s.strokes.ratio}
            if s.strokes
            else None,
        },
        # Raw strokes as recorded: [x, y, time in ms, pressure] per point.
        "strokes": [[list(p) for p in st] for st in s.strokes.strokes] if s.strokes else [],
    }


def _mark_lines(
    doc: Document, s: PatientSigning, actor: Actor, when: str
) -> tuple[str | None, list[str]]:
    from benhan.records.models import PatientSignature

    witness = f"Chứng kiến: {actor.user.full_name}"
    if s.outcome == PatientSignature.Outcome.REFUSED:
        reason = " ".join(s.refusal_reason.split())
        if len(reason) > 70:
            reason = reason[:69] + "…"
        return "NGƯỜI BỆNH TỪ CHỐI KÝ", [f"Lý do: {reason}", f"{witness} · {when}"]
    lines = []
    if s.by_representative:
        lines.append(f"{s.representative_name.strip()} ({s.relation.strip()})"[:60])
    lines.append(f"Ký trên máy tính bảng {when} · {witness}"[:80])
    return None, lines


def do_patient_sign(actor: Actor, doc: Document, s: PatientSigning, pin: str = "") -> Any:
    """The patient's signature (or witnessed refusal) on the current version.

    Before any staff signature: the drawing into the patient's box and the evidence
    embedded, as page content that the staff signatures and the seal then cover. After
    one: page content may not change, so the drawing becomes the appearance of a
    signature field signed with the witness's key (their PIN is needed).
    """
    from benhan.records import patient_sign
    from benhan.records.models import PatientSignature
    from benhan.records.storage import default_store

    doc = Document.objects.select_related("record__encounter__patient", "facility").get(pk=doc.pk)
    version = doc.current_version()
    _check_patient_signing(doc, version, s)
    store = default_store()
    shown = store.get(version.current_sha256)
    now = timezone.now()
    when = timezone.localtime(now).strftime("%d/%m/%Y %H:%M")
    evidence = _evidence(actor, doc, version, s, shown, now)
    blob = patient_sign.canonical(evidence)
    evidence_sha = patient_sign.sha256(blob)
    store.put(blob)  # the evidence is kept whole in the store too
    title, lines = _mark_lines(doc, s, actor, when)
    svg = patient_sign.signature_svg(s.strokes) if s.strokes is not None else None
    box = version.boxes.get("patient")
    if box is None:
        raise ValidationError(_("This form has no box for the patient's signature."))
    mark = patient_sign.mark_pdf(
        box[3] - box[1], box[4] - box[2], svg=svg, title=title, lines=lines
    )
    staff_signed = version.signatures.exists()
    if not staff_signed:
        placement = "page"
        signed = patient_sign.place_in_page(
            shown, page=box[0], box=tuple(box[1:]), mark=mark, evidence=blob,
            description=f"Bằng chứng chữ ký của người bệnh / patient signature evidence "
                        f"SHA-256 {evidence_sha}",
        )  # fmt: skip
        sha = store.put(signed)
    else:
        placement = "field"
        sha = _witness_sign(actor, doc, version, pin, mark, evidence_sha)
    with transaction.atomic():
        locked = Document.objects.select_for_update().get(pk=doc.pk)
        version = locked.current_version()
        # Someone may have signed while we drew: then start again from what is there now.
        if (
            version.current_sha256 != s.shown_sha256
            or PatientSignature.objects.filter(version=version).exists()
        ):
            raise ValidationError(_("The document changed while it was shown (someone signed "
                                    "it). Show it to the patient again."))  # fmt: skip
        ps = PatientSignature.objects.create(
            version=version, outcome=s.outcome, by_representative=s.by_representative,
            signer_name=evidence["signer"]["name"], relation=evidence["signer"]["relation"],
            identity=s.identity, identity_detail=s.identity_detail.strip(),
            refusal_reason=s.refusal_reason.strip(), witness=actor.user, placement=placement,
            shown_sha256=s.shown_sha256, evidence=evidence, evidence_sha256=evidence_sha,
            sha256_after=sha, signed_at=now,
        )  # fmt: skip
        version.current_sha256 = sha
        version.save(update_fields=["current_sha256"])
        record(actor, f"document.patient_{s.outcome}", obj=locked,
               patient=doc.record.encounter.patient,
               reason=s.refusal_reason.strip(),
               detail={"version": version.version, "placement": placement,
                       "representative": s.by_representative, "identity": s.identity,
                       "evidence_sha256": evidence_sha, "sha256": sha})  # fmt: skip
    return ps


def _witness_sign(actor: Actor, doc: Document, version: DocumentVersion, pin: str,
                  mark: bytes, evidence_sha: str) -> str:  # fmt: skip
    from benhan.records.storage import default_store
    from benhan.signing import pades
    from benhan.signing.selection import signer_for_user
    from benhan.signing.tsa import get_timestamper

    if not pin:
        raise ValidationError(_("Staff have already signed: enter your PIN to sign as the "
                                "witness of the patient's signature."))  # fmt: skip
    store = default_store()
    box = version.boxes["patient"]
    with signer_for_user(actor.user, pin) as signer:
        signed = pades.sign_pdf(
            store.get(version.current_sha256), signer=signer, field_name="patient",
            page=box[0], box=tuple(box[1:]), appearance=mark,
            reason=f"Chữ ký tay của người bệnh, chứng kiến: {actor.user.full_name}; "
                   f"bằng chứng SHA-256 {evidence_sha}",
            timestamper=get_timestamper(doc.facility),
        )  # fmt: skip
    return store.put(signed)


# --- Signed paper, photographed -------------------------------------------------------


def _check_page_codes(doc: Document, version_no: int, pdf: bytes) -> None:
    """Refuse pages whose QR code names another document or version."""
    from benhan.records.paper import read_page_codes

    for code in read_page_codes(pdf):
        if code.lookup_code and code.lookup_code != doc.lookup_code:
            other = Document.objects.filter(lookup_code=code.lookup_code).first()
            raise ValidationError(
                _("Page %(page)s carries the QR code of another document (%(other)s), not "
                  "of %(this)s. Check that the right paper was photographed.")
                % {"page": code.page, "other": other.number if other else code.lookup_code,
                   "this": doc.number}
            )  # fmt: skip
        if code.paper is not None:
            if code.paper.document_id != doc.pk:
                other = Document.objects.filter(pk=code.paper.document_id).first()
                raise ValidationError(
                    _("Page %(page)s carries the QR code of another document (%(other)s), "
                      "not of %(this)s. Check that the right paper was photographed.")
                    % {"page": code.page, "other": other.number if other else "?",
                       "this": doc.number}
                )  # fmt: skip
            if code.paper.version != version_no:
                raise ValidationError(
                    _("Page %(page)s is from version %(paper)s of this document, not version "
                      "%(this)s.") % {"page": code.page, "paper": code.paper.version,
                                      "this": version_no}
                )  # fmt: skip


def do_file_paper(
    actor: Actor,
    doc: Document,
    version_no: int,
    *,
    files: list[tuple[str, bytes]],
    paper_location: str,
    upload_key: str,
    colour: bool = False,
    deskew: bool = False,
) -> DocumentVersion:
    """File the signed paper of version `version_no` as the document, and seal it.

    The photos (or a PDF) become a compact PDF marked "converted from paper" with the
    converter's name and time on every page; it becomes the next version of the
    document (same content, source "paper", where the paper is kept), sealed at once by
    the facility: the handwritten signatures are on the paper, the facility's digital
    signature confirms the conversion. Originals are stored first and the PDF read back
    before anything points at it. A resent upload (same key) returns the first filing.
    """
    from benhan.records.render import stamp_pages
    from benhan.records.storage import default_store
    from benhan.scans import ScanError, ScanOptions, check_pdf_upload, process
    from benhan.signing import pades
    from benhan.signing.tsa import get_timestamper

    earlier = filed_paper(doc, upload_key)
    if earlier is not None:
        return earlier
    doc = Document.objects.select_related("record__encounter__patient", "facility").get(pk=doc.pk)
    guards.check_paper_fileable(doc, version_no)
    location = paper_location.strip()
    if not location:
        raise ValidationError(_("Say where the paper original is kept (box, shelf)."))
    if not files:
        raise ScanError("empty")
    store = default_store()
    originals = [{"name": name[:200], "sha256": store.put(data), "size": len(data)}
                 for name, data in files]  # fmt: skip
    now = timezone.now()
    when = timezone.localtime(now)
    if len(files) == 1 and files[0][1][:5] == b"%PDF-":
        pdf = check_pdf_upload(files[0][1])
    else:
        pdf, _info = process(
            [data for _, data in files], ScanOptions(colour=colour, deskew=deskew),
            title=f"{doc.type.title} · {doc.number}", author=doc.facility.name,
            converted_by=actor.user.full_name, converted_at=when.isoformat(timespec="seconds"),
        )  # fmt: skip
    _check_page_codes(doc, version_no, pdf)
    pdf = stamp_pages(
        pdf,
        f"Bản chuyển đổi từ hồ sơ giấy · Người chuyển đổi: {actor.user.full_name} · "
        f"{when:%H:%M %d/%m/%Y} · Số phiếu {doc.number} · Mã tra cứu {doc.lookup_code}",
        band=True,
    )
    sha = store.put(pdf)
    store.get(sha)  # read back and checked before anything points at it
    with transaction.atomic():
        doc = Document.objects.select_for_update().get(pk=doc.pk)
        earlier = filed_paper(doc, upload_key)
        if earlier is not None:
            return earlier
        guards.check_paper_fileable(doc, version_no)
        printed = doc.current_version()
        version = DocumentVersion.objects.create(
            document=doc, version=printed.version + 1, data=dict(printed.data),
            amendment_reason=_("Signed paper of version %(v)s, converted") % {"v": version_no},
            completed_at=now, completed_by=actor.user, rendered_sha256=sha,
            current_sha256=sha, size=len(pdf), boxes={}, source="paper",
            converted_by=actor.user, converted_at=now, paper_location=location[:200],
            originals=originals, upload_key=upload_key,
        )  # fmt: skip
        patient = doc.record.encounter.patient
        record(actor, "document.file_paper", obj=doc, patient=patient,
               detail={"version": version.version, "printed_version": version_no,
                       "pages": _pdf_pages(pdf), "sha256": sha, "paper_location": location,
                       "originals": [o["sha256"] for o in originals]})  # fmt: skip
        # The facility's seal confirms the conversion; nothing can change after it.
        stamp = [doc.facility.name, _("Facility seal"), _now_text()]
        sealed = _sign_and_store(version, pades.seal_signer(doc.facility), field="seal",
                                 stamp=stamp, timestamper=get_timestamper(doc.facility),
                                 seal=True)  # fmt: skip
        Signature.objects.create(version=version, slot="seal", signer=actor.user,
                                 signed_at=timezone.now(), sha256_after=sealed)  # fmt: skip
        version.current_sha256 = sealed
        version.sealed_at = timezone.now()
        version.save(update_fields=["current_sha256", "sealed_at"])
        doc.status = DocumentStatus.SEALED
        doc.updated_at = timezone.now()
        doc.save(update_fields=["status", "updated_at"])
        record(actor, "document.seal", obj=doc, patient=patient,
               detail={"version": version.version, "sha256": sealed, "paper": True})  # fmt: skip
    return version


def _earlier_upload(rows, **owner):
    """The filing an upload key already made, or None. A key is made for one upload page;
    arriving for another document or record it is refused (a bug, or a forged post), not
    answered with the other filing."""
    earlier = rows.first()
    if earlier is None:
        return None
    if any(getattr(earlier, f"{k}_id") != v.pk for k, v in owner.items()):
        raise ValidationError(_("This upload was already used for another document. "
                                "Reload the page and send the files again."))  # fmt: skip
    return earlier


def filed_paper(doc: Document, upload_key: str) -> DocumentVersion | None:
    """The paper version an upload key already filed for `doc` (a phone resending)."""
    return _earlier_upload(DocumentVersion.objects.filter(upload_key=upload_key), document=doc)


# --- Original photos of filed paper ---------------------------------------------------


@dataclass
class PurgeReport:
    filings: int = 0
    removed: int = 0
    bytes: int = 0
    kept_shared: int = 0
    failed: list[str] | None = None


def do_purge_originals(actor: Actor, *, older_than_days: int, dry_run: bool = False) -> PurgeReport:
    """Remove the original photos of paper filed more than `older_than_days` ago.

    The photos are inputs: what is kept is the converted PDF, sealed (and the paper
    itself). They are kept for a while so that a bad conversion can be redone, then
    removed here once the converted PDF reads back intact from the store. A photo that
    a more recent filing also sent is kept. Each filing purged is audited.
    """
    from datetime import timedelta

    from benhan.records.storage import CorruptObject, MissingObject, default_store

    store = default_store()
    cutoff = timezone.now() - timedelta(days=older_than_days)
    report = PurgeReport(failed=[])
    filings = [
        *(("scan", s, s.sha256, s.uploaded_at, s.record.encounter.patient)
          for s in ScannedDocument.objects.select_related("record__encounter__patient")),
        *(("paper", v, v.current_sha256, v.converted_at, v.document.record.encounter.patient)
          for v in DocumentVersion.objects.filter(source="paper").select_related(
              "document__record__encounter__patient")),
    ]  # fmt: skip
    keep = {o["sha256"] for _, row, _, when, _ in filings if when >= cutoff
            for o in row.originals if not o.get("purged_at")}  # fmt: skip
    for kind, row, pdf_sha, when, patient in filings:
        pending = [o for o in row.originals if not o.get("purged_at")]
        if when >= cutoff or not pending:
            continue
        try:
            store.get(pdf_sha)  # the converted PDF must check out first
        except (CorruptObject, MissingObject) as e:
            report.failed.append(f"{kind} {row.pk}: {e}")
            continue
        report.filings += 1
        removed = []
        for o in pending:
            if o["sha256"] in keep:
                report.kept_shared += 1
                continue
            if not dry_run and store.discard(o["sha256"]):
                report.removed += 1
                report.bytes += o.get("size", 0)
                removed.append(o["sha256"])
            elif dry_run:
                report.removed += 1
                report.bytes += o.get("size", 0)
            o["purged_at"] = timezone.now().isoformat(timespec="seconds")
        if dry_run:
            continue
        with transaction.atomic():
            type(row).objects.filter(pk=row.pk).update(originals=row.originals)
            record(actor, "scan.originals_purged", obj=row, patient=patient,
                   detail={"kind": kind, "removed": removed, "pdf": pdf_sha})  # fmt: skip
    return report
