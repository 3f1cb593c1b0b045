"""The laboratory: test catalogue, orders, specimens, analyzers, results, inbox.

Flow: a doctor orders tests on an encounter (LabOrder + OrderItem per test, panels
expanded); the lab collects the sample (Specimen with an accession number, label
printed); the analyzer sends results (AnalyzerMessage keeps the raw bytes, Result one
row per value, matched to the specimen by its accession number or left unmatched);
the technician reviews and signs (a lab_report document in the encounter's record,
PAdES-signed and sealed); the ordering department gets a ResultNotice.

Values are kept exactly as sent beside their parsed number. Nothing is deleted: a
repeat or a correction supersedes a result, which stays.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class SpecimenType(models.TextChoices):
    SERUM = "serum", _("Serum")
    PLASMA = "plasma", _("Plasma (heparin)")
    WHOLE_BLOOD = "whole_blood", _("Whole blood (EDTA)")
    CITRATE = "citrate", _("Citrated blood")
    URINE = "urine", _("Urine")
    OTHER = "other", _("Other")
    NONE = "none", _("No specimen (imaging)")


class TestKind(models.TextChoices):
    LAB = "lab", _("Laboratory test")
    ULTRASOUND = "ultrasound", _("Ultrasound")
    XRAY = "xray", _("X-ray")
    ECG = "ecg", _("ECG")


class LabTest(models.Model):
    """A test or a panel of the catalogue. Configured by an administrator."""

    __test__ = False  # not a pytest test class, whatever its name

    facility = models.ForeignKey("accounts.Facility", on_delete=models.PROTECT)
    code = models.CharField(_("local code"), max_length=20)
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=12, choices=TestKind, default=TestKind.LAB)
    loinc = models.CharField(_("LOINC"), max_length=20, blank=True)
    # The Ministry of Health's code for the result indicator (mã chỉ số, QĐ 7603/QĐ-BYT
    # and the insurance data tables); filled in by the clinic.
    moh_code = models.CharField(_("Ministry indicator code"), max_length=30, blank=True)
    unit = models.CharField(_("unit"), max_length=30, blank=True)
    specimen_type = models.CharField(
        _("specimen"), max_length=12, choices=SpecimenType, default=SpecimenType.SERUM
    )
    price = models.PositiveIntegerField(_("price (VND)"), default=0)
    decimals = models.PositiveSmallIntegerField(_("decimals"), default=1)
    critical_low = models.DecimalField(
        _("critical below"), max_digits=12, decimal_places=4, null=True, blank=True
    )
    critical_high = models.DecimalField(
        _("critical above"), max_digits=12, decimal_places=4, null=True, blank=True
    )
    is_panel = models.BooleanField(_("panel"), default=False)
    members = models.ManyToManyField(
        "self", through="PanelMember", symmetrical=False, related_name="panels", blank=True
    )
    needs_verifier = models.BooleanField(_("second verifier required"), default=False)
    sort_order = models.PositiveIntegerField(_("order in reports"), default=0)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("laboratory test")
        verbose_name_plural = _("test catalogue")
        ordering = ["sort_order", "code"]
        constraints = [
            models.UniqueConstraint(fields=["facility", "code"], name="labtest_unique_code")
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def is_imaging(self) -> bool:
        return self.kind != TestKind.LAB


class PanelMember(models.Model):
    panel = models.ForeignKey(LabTest, on_delete=models.CASCADE, related_name="+")
    test = models.ForeignKey(LabTest, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["panel", "test"], name="panel_member_unique")
        ]

    def __str__(self) -> str:
        return f"{self.panel_id}:{self.test_id}"


class ReferenceRange(models.Model):
    """Normal limits by sex and age. The most specific matching row applies."""

    class Sex(models.TextChoices):
        ANY = "", _("Any")
        MALE = "M", _("Male")
        FEMALE = "F", _("Female")

    test = models.ForeignKey(LabTest, on_delete=models.CASCADE, related_name="ranges")
    sex = models.CharField(_("sex"), max_length=1, choices=Sex, blank=True, default="")
    age_min_days = models.PositiveIntegerField(_("from age (days)"), default=0)
    age_max_days = models.PositiveIntegerField(_("to age (days)"), null=True, blank=True)
    low = models.DecimalField(_("low"), max_digits=12, decimal_places=4, null=True, blank=True)
    high = models.DecimalField(_("high"), max_digits=12, decimal_places=4, null=True, blank=True)
    text = models.CharField(_("as printed"), max_length=60, blank=True)  # e.g. "Âm tính"

    class Meta:
        verbose_name = _("reference range")
        ordering = ["test", "sex", "age_min_days"]

    def __str__(self) -> str:
        return self.display

    @property
    def display(self) -> str:
        if self.text:
            return self.text
        if self.low is not None and self.high is not None:
            return f"{_num(self.low)} - {_num(self.high)}"
        if self.high is not None:
            return f"< {_num(self.high)}"
        if self.low is not None:
            return f"> {_num(self.low)}"
        return ""


def _num(d) -> str:
    text = format(d.normalize(), "f")
    return text.replace(".", ",")


class OrderStatus(models.TextChoices):
    ORDERED = "ordered", _("Ordered")
    COLLECTED = "collected", _("Sample collected")
    RESULTED = "resulted", _("Results in")
    SIGNED = "signed", _("Signed")
    CANCELLED = "cancelled", _("Cancelled")


class LabOrder(models.Model):
    class Priority(models.TextChoices):
        ROUTINE = "routine", _("Routine")
        STAT = "stat", _("Urgent")

    facility = models.ForeignKey("accounts.Facility", on_delete=models.PROTECT)
    encounter = models.ForeignKey(
        "encounters.Encounter", on_delete=models.PROTECT, related_name="lab_orders"
    )
    number = models.CharField(max_length=20)
    # The department that ordered (the encounter's department at the time): its inbox
    # receives the results.
    department = models.ForeignKey("accounts.Department", on_delete=models.PROTECT)
    ordered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    ordered_at = models.DateTimeField()
    priority = models.CharField(max_length=10, choices=Priority, default=Priority.ROUTINE)
    note = models.CharField(_("clinical note"), max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=OrderStatus, default=OrderStatus.ORDERED)

    class Meta:
        ordering = ["-ordered_at"]
        constraints = [
            models.UniqueConstraint(fields=["facility", "number"], name="laborder_unique_number")
        ]
        indexes = [models.Index(fields=["facility", "status"], name="laborder_status")]

    def __str__(self) -> str:
        return self.number


class SpecimenStatus(models.TextChoices):
    COLLECTED = "collected", _("Collected, waiting for results")
    PARTIAL = "partial", _("Some results in")
    COMPLETE = "complete", _("Results complete, to review")
    SIGNED = "signed", _("Signed")


class Specimen(models.Model):
    """One tube (or, for imaging, one examination) with its accession number."""

    facility = models.ForeignKey("accounts.Facility", on_delete=models.PROTECT)
    order = models.ForeignKey(LabOrder, on_delete=models.PROTECT, related_name="specimens")
    accession = models.CharField(_("accession number"), max_length=20)
    specimen_type = models.CharField(max_length=12, choices=SpecimenType)
    collected_at = models.DateTimeField()
    collected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(
        max_length=10, choices=SpecimenStatus, default=SpecimenStatus.COLLECTED
    )
    report = models.ForeignKey(
        "records.Document", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    signed_at = models.DateTimeField(null=True, blank=True)
    # Imaging: the examiner's text report and attached images (sha256 in the store).
    findings = models.TextField(_("findings"), blank=True)
    conclusion = models.TextField(_("conclusion"), blank=True)
    images = models.JSONField(default=list, blank=True)  # [{"sha256", "name", "size"}]
    # Ready for the patient app once signed (the app is a later issue).
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-collected_at"]
        constraints = [
            models.UniqueConstraint(fields=["facility", "accession"], name="specimen_accession")
        ]
        indexes = [models.Index(fields=["facility", "status"], name="specimen_status")]

    def __str__(self) -> str:
        return self.accession


class OrderItem(models.Model):
    order = models.ForeignKey(LabOrder, on_delete=models.PROTECT, related_name="items")
    test = models.ForeignKey(LabTest, on_delete=models.PROTECT, related_name="+")
    panel = models.ForeignKey(
        LabTest, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    specimen = models.ForeignKey(
        Specimen, on_delete=models.PROTECT, null=True, blank=True, related_name="items"
    )
    status = models.CharField(max_length=10, choices=OrderStatus, default=OrderStatus.ORDERED)

    class Meta:
        ordering = ["order", "test__sort_order", "test__code"]

    def __str__(self) -> str:
        return f"{self.order} {self.test.code}"


class Analyzer(models.Model):
    class Protocol(models.TextChoices):
        HL7 = "hl7", _("HL7 v2 over MLLP")
        ASTM = "astm", _("ASTM E1381/E1394 (LIS1/LIS2)")

    class Transport(models.TextChoices):
        TCP = "tcp", _("TCP: the analyzer connects to us")
        SERIAL = "serial", _("Serial port (RS-232)")

    facility = models.ForeignKey("accounts.Facility", on_delete=models.PROTECT)
    name = models.CharField(_("name"), max_length=100)
    protocol = models.CharField(_("protocol"), max_length=6, choices=Protocol)
    transport = models.CharField(
        _("transport"), max_length=6, choices=Transport, default=Transport.TCP
    )
    host = models.CharField(_("listen address"), max_length=100, default="127.0.0.1")
    port = models.PositiveIntegerField(_("port"), null=True, blank=True)
    serial_device = models.CharField(_("serial device"), max_length=100, blank=True)
    baudrate = models.PositiveIntegerField(_("baud rate"), default=9600)
    # Tunes the acknowledgement layout and where to look for fields, never whether a
    # message is read: {"ack_style": "mindray"|"ihe", "specimen_fields": [...], …}
    dialect = models.JSONField(_("dialect options"), default=dict, blank=True)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("analyzer")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AnalyzerCode(models.Model):
    """The analyzer's own test code for a catalogue test."""

    analyzer = models.ForeignKey(Analyzer, on_delete=models.CASCADE, related_name="codes")
    code = models.CharField(_("analyzer's code"), max_length=40)
    test = models.ForeignKey(LabTest, on_delete=models.PROTECT, related_name="+")

    class Meta:
        verbose_name = _("analyzer test code")
        constraints = [
            models.UniqueConstraint(fields=["analyzer", "code"], name="analyzer_code_unique")
        ]

    def __str__(self) -> str:
        return f"{self.analyzer} {self.code} → {self.test.code}"


class AnalyzerMessage(models.Model):
    """Every message an analyzer sent, raw, with what became of it. Stored before the
    acknowledgement is sent; a resent identical message is stored once."""

    class Outcome(models.TextChoices):
        ACCEPTED = "accepted", _("Accepted")
        ERROR = "error", _("Refused (AE)")
        REJECTED = "rejected", _("Rejected (AR)")
        QUERY = "query", _("Host query answered")

    # Searched through analyzer_message_once, which starts with it (one index fewer to
    # write per message: see Result).
    analyzer = models.ForeignKey(Analyzer, on_delete=models.PROTECT, related_name="messages",
                                 db_index=False)  # fmt: skip
    received_at = models.DateTimeField(db_index=True)
    raw = models.BinaryField()
    sha256 = models.CharField(max_length=64)
    size = models.PositiveIntegerField()
    message_type = models.CharField(max_length=30, blank=True)
    control_id = models.CharField(max_length=60, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome)
    reason = models.CharField(max_length=500, blank=True)
    results = models.PositiveIntegerField(default=0)
    unmatched = models.PositiveIntegerField(default=0)
    ack = models.BinaryField(blank=True, default=b"")
    peer = models.CharField(max_length=100, blank=True)
    # When its results were matched to specimens: in the same transaction as the raw
    # message, unless matching failed (None, with the reason; the listener tries again
    # every minute, see Ingestor.store).
    matched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["analyzer", "sha256"], name="analyzer_message_once")
        ]
        # Only the messages still to match (partial): the others never enter it.
        indexes = [models.Index(fields=["analyzer"], name="analyzer_message_pending",
                                condition=models.Q(matched_at__isnull=True))]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.analyzer} {self.message_type} {self.control_id}"


class ResultState(models.TextChoices):
    CURRENT = "current", _("Current")
    SUPERSEDED = "superseded", _("Superseded (repeated or corrected)")
    UNMATCHED = "unmatched", _("Unmatched: no such specimen")
    QC = "qc", _("Quality control")
    REJECTED = "rejected", _("Not used (linked elsewhere)")


class Result(models.Model):
    """One value as an analyzer (or a technician) gave it.

    Indexes are few on purpose: each one is another B-tree page written and, on SQLite,
    another 4 KB frame in the write-ahead log for every analyzer message (six rows). Only
    what a query needs is indexed: a specimen's results (result_specimen_state), a
    message's rows, an order item's, and the unmatched queue (a partial index, so
    current and superseded rows never enter it). The other foreign keys keep their
    constraint without an index: they are never searched by, and their parents (tests,
    analyzers, staff) are never deleted once they have results (PROTECT)."""

    # The unmatched queue's index starts with the facility (see Meta).
    facility = models.ForeignKey("accounts.Facility", on_delete=models.PROTECT, db_index=False)
    specimen = models.ForeignKey(
        Specimen, on_delete=models.PROTECT, null=True, blank=True, related_name="results",
        db_index=False,  # result_specimen_state starts with it
    )  # fmt: skip
    item = models.ForeignKey(
        OrderItem, on_delete=models.PROTECT, null=True, blank=True, related_name="results"
    )
    test = models.ForeignKey(
        LabTest, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        db_index=False,
    )  # fmt: skip
    analyzer = models.ForeignKey(
        Analyzer, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        db_index=False,
    )  # fmt: skip
    message = models.ForeignKey(
        AnalyzerMessage, on_delete=models.PROTECT, null=True, blank=True, related_name="rows"
    )
    # As sent by the analyzer.
    specimen_id_sent = models.CharField(max_length=60, blank=True)
    test_code_sent = models.CharField(max_length=40, blank=True)
    test_name_sent = models.CharField(max_length=100, blank=True)
    value = models.CharField(max_length=200)
    unit = models.CharField(max_length=30, blank=True)
    reference_range = models.CharField(max_length=60, blank=True)
    flags = models.CharField(max_length=30, blank=True)
    status_sent = models.CharField(max_length=5, blank=True)
    observed_at = models.DateTimeField(null=True, blank=True)
    # Parsed.
    value_num = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    comparator = models.CharField(max_length=2, blank=True)  # "<", ">", "<=", ">="
    # From the catalogue's reference range and critical limits: "", "L", "H";
    # critical when beyond a critical limit.
    interpretation = models.CharField(max_length=2, blank=True)
    critical = models.BooleanField(default=False)
    state = models.CharField(max_length=10, choices=ResultState, default=ResultState.CURRENT)
    source = models.CharField(max_length=10, default="analyzer")  # analyzer | manual
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
        related_name="+", db_index=False,
    )  # fmt: skip
    reason = models.CharField(max_length=500, blank=True)  # a correction's reason
    supersedes = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        db_index=False,
    )  # fmt: skip
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["specimen", "test__sort_order", "id"]
        indexes = [
            models.Index(fields=["specimen", "state"], name="result_specimen_state"),
            models.Index(
                fields=["facility", "created_at"],
                name="result_unmatched",
                condition=models.Q(state=ResultState.UNMATCHED),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.specimen_id_sent} {self.test_code_sent}={self.value}"


class ResultNotice(models.Model):
    """A signed result in the ordering department's inbox; a critical value also goes
    to the ordering doctor personally."""

    facility = models.ForeignKey("accounts.Facility", on_delete=models.PROTECT)
    department = models.ForeignKey("accounts.Department", on_delete=models.PROTECT)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
        related_name="+",
    )  # fmt: skip
    specimen = models.ForeignKey(Specimen, on_delete=models.PROTECT, related_name="notices")
    encounter = models.ForeignKey("encounters.Encounter", on_delete=models.PROTECT)
    critical = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    read_at = models.DateTimeField(null=True, blank=True)
    read_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
        related_name="+",
    )  # fmt: skip

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["department", "read_at"], name="notice_unread")]

    def __str__(self) -> str:
        return f"{self.department_id} {self.specimen_id}"
