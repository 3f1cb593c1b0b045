"""Medical records (hồ sơ bệnh án), their documents, versions and signatures.

A record belongs to one encounter and holds documents. A document's content lives in
versions: a draft is edited freely; completing it freezes the data into a version,
renders the PDF and keeps its SHA-256; staff signatures and the facility seal are
incremental updates of that PDF. An amendment starts a new version with a reason;
earlier versions stay readable. Nothing is deleted.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from benhan.records import formtypes


class RecordStatus(models.TextChoices):
    OPEN = "open", _("Open")
    CLOSED = "closed", _("Closed and stored")


class Record(models.Model):
    facility = models.ForeignKey("accounts.Facility", on_delete=models.PROTECT)
    encounter = models.OneToOneField(
        "encounters.Encounter", on_delete=models.PROTECT, related_name="record"
    )
    number = models.CharField(_("record number"), max_length=20)
    status = models.CharField(max_length=10, choices=RecordStatus, default=RecordStatus.OPEN)
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    retention_class = models.CharField(max_length=20, blank=True)
    # None while open, and for records kept permanently (medical incidents).
    retain_until = models.DateField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["facility", "number"], name="record_unique_number")
        ]
        indexes = [models.Index(fields=["facility", "status"], name="record_status")]

    def __str__(self) -> str:
        return self.number


class DocumentStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    COMPLETED = "completed", _("Completed, awaiting signatures")
    SIGNED = "signed", _("Signed")
    SEALED = "sealed", _("Sealed")


class Document(models.Model):
    facility = models.ForeignKey("accounts.Facility", on_delete=models.PROTECT)
    record = models.ForeignKey(Record, on_delete=models.PROTECT, related_name="documents")
    form_type = models.CharField(max_length=40)
    number = models.CharField(max_length=30)
    status = models.CharField(max_length=10, choices=DocumentStatus, default=DocumentStatus.DRAFT)
    # The draft being edited (before completion, or during an amendment).
    draft = models.JSONField(default=dict, blank=True)
    # Set by an amendment, carried into the next version when it is completed.
    amendment_reason = models.TextField(blank=True)
    # Public lookup code printed with the QR code.
    lookup_code = models.CharField(max_length=12, unique=True)
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["number"]
        indexes = [models.Index(fields=["facility", "status"], name="document_status")]

    def __str__(self) -> str:
        return f"{self.number} {self.form_type}"

    @property
    def type(self) -> formtypes.FormType:
        return formtypes.get(self.form_type)

    def current_version(self) -> DocumentVersion | None:
        return self.versions.order_by("-version").first()


class DocumentVersion(models.Model):
    """One frozen content of a document and its PDF, as completed and then signed."""

    document = models.ForeignKey(Document, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    data = models.JSONField()
    amendment_reason = models.TextField(blank=True)
    completed_at = models.DateTimeField()
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    # The PDF as rendered, then as it stands after the latest signature.
    rendered_sha256 = models.CharField(max_length=64)
    current_sha256 = models.CharField(max_length=64)
    size = models.PositiveIntegerField(default=0)
    # Where each signature box is on the page, from the renderer.
    boxes = models.JSONField(default=dict)
    sealed_at = models.DateTimeField(null=True, blank=True)
    # "paper": the version is the photographed paper, signed by hand, converted and
    # sealed (see actions.do_file_paper); the content above is that of the version printed.
    source = models.CharField(max_length=10, default="electronic")
    converted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
        related_name="+",
    )  # fmt: skip
    converted_at = models.DateTimeField(null=True, blank=True)
    paper_location = models.CharField(_("where the paper is kept"), max_length=200, blank=True)
    originals = models.JSONField(default=list, blank=True)  # [{"name", "sha256", "size"}]
    # One filing per upload, however often a phone resends it.
    upload_key = models.CharField(max_length=64, null=True, blank=True, unique=True)

    class Meta:
        ordering = ["document", "version"]
        constraints = [
            models.UniqueConstraint(fields=["document", "version"], name="version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.document.number} v{self.version}"


class Signature(models.Model):
    version = models.ForeignKey(
        DocumentVersion, on_delete=models.PROTECT, related_name="signatures"
    )
    slot = models.CharField(max_length=40)  # a form type's slot, or "seal"
    signer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    signed_at = models.DateTimeField()
    sha256_after = models.CharField(max_length=64)

    class Meta:
        ordering = ["signed_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["version", "slot"], name="signature_one_per_slot")
        ]

    def __str__(self) -> str:
        return f"{self.version} {self.slot}"

    @property
    def slot_title(self) -> str:
        if self.slot == "seal":
            return str(_("Facility seal"))
        form = self.version.document.type
        title = next((s.title for s in form.signers if s.slot == self.slot), self.slot)
        return title.capitalize()


class PatientSignature(models.Model):
    """The patient's (or a representative's) own signature on a version, or their refusal.

    Drawn on a tablet in front of a witnessing staff member. Before any staff signature
    the drawing goes into the page (the patient's box) with this evidence attached inside
    the PDF, so the staff signatures and the seal cover both; after a staff signature the
    drawing is the appearance of a signature field signed with the witness's key.
    """

    class Outcome(models.TextChoices):
        SIGNED = "signed", _("Signed")
        REFUSED = "refused", _("Refused to sign")

    class Identity(models.TextChoices):
        CCCD = "cccd", _("Citizen ID card seen, number confirmed")
        INSURANCE = "insurance", _("Health insurance card with photo seen")
        PASSPORT = "passport", _("Passport seen")
        KNOWN = "known", _("Known to the staff (inpatient wristband, family)")
        OTHER = "other", _("Other (say how)")

    version = models.OneToOneField(
        DocumentVersion, on_delete=models.PROTECT, related_name="patient_signature"
    )
    outcome = models.CharField(max_length=10, choices=Outcome)
    by_representative = models.BooleanField(default=False)
    signer_name = models.CharField(max_length=200)
    relation = models.CharField(max_length=60, blank=True)
    identity = models.CharField(max_length=10, choices=Identity)
    identity_detail = models.CharField(max_length=200, blank=True)
    refusal_reason = models.TextField(blank=True)
    witness = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    # "page": drawn into the page before staff signatures; "field": the appearance of a
    # signature field signed with the witness's key.
    placement = models.CharField(max_length=10)
    shown_sha256 = models.CharField(max_length=64)
    evidence = models.JSONField()
    evidence_sha256 = models.CharField(max_length=64)
    sha256_after = models.CharField(max_length=64)
    signed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.version} {self.outcome} {self.signer_name}"


class PriceItem(models.Model):
    """A service or drug with its hospital and insurance prices (VND), for statements."""

    class Kind(models.TextChoices):
        SERVICE = "service", _("Service")
        DRUG = "drug", _("Drug")

    facility = models.ForeignKey("accounts.Facility", on_delete=models.PROTECT)
    code = models.CharField(_("code"), max_length=30)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind)
    group = models.CharField(_("group"), max_length=60)
    name = models.CharField(_("name"), max_length=200)
    unit = models.CharField(_("unit"), max_length=20)
    price = models.PositiveIntegerField(_("hospital price"))
    insurance_price = models.PositiveIntegerField(_("insurance price"))
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("price list item")
        verbose_name_plural = _("price list")
        ordering = ["kind", "group", "name"]
        constraints = [
            models.UniqueConstraint(fields=["facility", "code"], name="priceitem_unique_code")
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class ScanKind(models.TextChoices):
    OLD_RECORD = "old_record", _("Old paper record")
    REFERRAL = "referral", _("Referral letter")
    OUTSIDE_RESULT = "outside_result", _("Outside test result")
    OTHER = "other", _("Other document")


class ScannedDocument(models.Model):
    """Paper filed into a record: old records, referral letters, outside results.

    The PDF (built from phone photos, or an uploaded PDF that passed the checks) is in
    the content-addressed store; the originals too, so nothing sent is lost.
    """

    facility = models.ForeignKey("accounts.Facility", on_delete=models.PROTECT)
    record = models.ForeignKey(Record, on_delete=models.PROTECT, related_name="scans")
    kind = models.CharField(_("type"), max_length=20, choices=ScanKind)
    title = models.CharField(_("title"), max_length=200)
    document_date = models.DateField(_("date of the document"), null=True, blank=True)
    pages = models.PositiveIntegerField(_("pages"))
    sha256 = models.CharField(max_length=64)
    size = models.PositiveIntegerField()
    originals = models.JSONField(default=list)  # [{"name", "sha256", "size"}]
    paper_location = models.CharField(_("where the paper is kept"), max_length=200, blank=True)
    # One upload, however often the phone resends it.
    upload_key = models.CharField(max_length=64, unique=True)
    uploaded_at = models.DateTimeField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-uploaded_at"]
        indexes = [models.Index(fields=["record", "kind"], name="scan_record_kind")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.title}"
