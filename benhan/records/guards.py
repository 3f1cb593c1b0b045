"""Named predicates for the document state machine (after SENAITE's workflow guards).

Each check_* raises ValidationError with a message for the user; the actions call
them inside their transaction, after locking the row.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from benhan.accounts.models import Role
from benhan.records.formtypes import SignatureSlot
from benhan.records.models import Document, DocumentStatus, DocumentVersion, Record, RecordStatus


def check_record_open(rec: Record) -> None:
    if rec.status != RecordStatus.OPEN:
        raise ValidationError(_("This record is closed and stored; it cannot change."))


def check_editable(doc: Document) -> None:
    check_record_open(doc.record)
    if doc.status != DocumentStatus.DRAFT:
        raise ValidationError(_("This document is completed; change it only through an amendment."))


def signed_slots(version: DocumentVersion) -> set[str]:
    return set(version.signatures.values_list("slot", flat=True))


def next_slot(doc: Document, version: DocumentVersion | None) -> SignatureSlot | None:
    """The first staff slot, in the form's order, that has no signature yet."""
    if version is None:
        return None
    done = signed_slots(version)
    return next((s for s in doc.type.signers if s.slot not in done), None)


def next_slot_for(doc: Document, version: DocumentVersion | None, user) -> SignatureSlot:
    """The slot `user` would sign now, or a ValidationError saying why not."""
    if doc.status == DocumentStatus.DRAFT or version is None:
        raise ValidationError(_("Complete the document before signing it."))
    if doc.status == DocumentStatus.SEALED or version.sealed_at is not None:
        raise ValidationError(_("This document is sealed; no signature can be added."))
    slot = next_slot(doc, version)
    if slot is None:
        raise ValidationError(_("All staff signatures are already there."))
    if user.role not in slot.roles:
        raise ValidationError(
            _("The next signature is for: %(title)s.") % {"title": slot.title.capitalize()}
        )
    encounter = doc.record.encounter
    if slot.attending_only and encounter.attending_id and encounter.attending_id != user.pk:
        raise ValidationError(_("This signature is for the attending doctor."))
    if user.pk in set(version.signatures.values_list("signer_id", flat=True)):
        raise ValidationError(_("You have already signed this document."))
    return slot


def all_staff_signed(doc: Document, version: DocumentVersion) -> bool:
    return next_slot(doc, version) is None


def check_sealable(doc: Document, user, *, automatic: bool = False) -> None:
    if not automatic and user.role != Role.RECORDS_OFFICER:
        raise ValidationError(_("Only the records office seals documents."))
    if doc.status == DocumentStatus.SEALED:
        raise ValidationError(_("This document is already sealed."))
    if doc.status != DocumentStatus.SIGNED:
        raise ValidationError(_("The document needs all its staff signatures before the seal."))
    version = doc.current_version()
    if doc.type.patient_signs and not hasattr(version, "patient_signature"):
        raise ValidationError(_("The patient has not signed (or refused, witnessed) yet: "
                                "use “Sign with the patient” first."))  # fmt: skip


def check_patient_signable(doc: Document, version: DocumentVersion | None) -> None:
    """The patient may sign (or refuse) the current version on the tablet now."""
    check_record_open(doc.record)
    if not doc.type.patient_signs:
        raise ValidationError(_("This form is not signed by the patient."))
    if doc.status == DocumentStatus.DRAFT or version is None:
        raise ValidationError(_("Complete the document before the patient signs it."))
    if doc.status == DocumentStatus.SEALED or version.sealed_at is not None:
        raise ValidationError(_("This document is sealed; no signature can be added."))
    if hasattr(version, "patient_signature"):
        raise ValidationError(_("The patient's signature (or refusal) is already recorded "
                                "for this version."))  # fmt: skip


def check_paper_fileable(doc: Document, version_no: int) -> None:
    """The signed paper of version `version_no` may be filed as the document now."""
    check_record_open(doc.record)
    if not doc.type.patient_signs:
        raise ValidationError(_("This form is not signed on paper by the patient."))
    version = doc.current_version()
    if doc.status == DocumentStatus.SEALED:
        raise ValidationError(
            _("This document is already sealed; its paper cannot be filed over it. "
              "Amend it first if the paper must replace it.")
        )  # fmt: skip
    if doc.status == DocumentStatus.DRAFT or version is None:
        raise ValidationError(_("This document is being amended; print the new version and "
                                "have that one signed."))  # fmt: skip
    if version.version != version_no:
        raise ValidationError(
            _("This paper is version %(paper)s, but the document is now at version %(now)s. "
              "Print the current version and have it signed.")
            % {"paper": version_no, "now": version.version}
        )  # fmt: skip


def check_amendable(doc: Document) -> None:
    check_record_open(doc.record)
    if doc.status == DocumentStatus.DRAFT:
        raise ValidationError(_("The document is still a draft: edit it directly."))


def check_closable(rec: Record) -> None:
    check_record_open(rec)
    if not rec.encounter.ended_at:
        raise ValidationError(_("The encounter has not ended yet."))
    docs = list(rec.documents.all())
    if not docs:
        raise ValidationError(_("The record has no documents."))
    if any(d.status != DocumentStatus.SEALED for d in docs):
        raise ValidationError(_("Every document must be sealed before the record is closed."))
