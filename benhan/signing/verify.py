"""Verify the signatures of a PDF, offline, the way `pyhanko sign adesverify` does.

    verify_pdf(pdf, *, trust_roots=None) -> Report

Each signature is validated with pyHanko's AdES long-term validation
(`ades_lta_validation`): the certificate chain must lead to a trusted root (by default
every facility's root CA in the database), revocation is checked with the validation
data embedded in the file (its DSS: certificates and CRLs) plus the CRLs the database
would publish now, and nothing is fetched from the network. A certificate revoked
after the signature's timestamp does not invalidate the signature.

pyHanko's difference analysis decides what changed after each signature. A report is
ok only when every signature is intact, trusted and passes pyHanko's bottom line, no
signature's changes are unknown, and — when the document is sealed — nothing but
validation data was added after the seal.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import asdict, dataclass, field
from io import BytesIO

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields
from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY, ModificationLevel
from pyhanko.sign.validation.ades import ades_lta_validation
from pyhanko.sign.validation.policy_decl import (
    LocalKnowledge,
    PdfSignatureValidationSpec,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator.authority import CertTrustAnchor
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.ltv.types import ValidationTimingInfo
from pyhanko_certvalidator.policy_decl import (
    REQUIRE_REVINFO,
    CertRevTrustPolicy,
    FreshnessReqType,
)
from pyhanko_certvalidator.registry import SimpleTrustManager
from pyhanko_certvalidator.revinfo.archival import CRLContainer

from benhan.signing.models import CertificateAuthority, Credential

logger = logging.getLogger(__name__)


class _NoExpectedNoise(logging.Filter):
    """pyHanko logs a warning with a traceback whenever a signature has no document
    timestamp after it (every staff signature before the seal): expected, not news."""

    NOISE = ("Failed to get control time", "No document timestamps after signature")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(n in message for n in self.NOISE)


for _name in ("pyhanko.sign.validation.generic_cms", "pyhanko.sign.validation.ades"):
    logging.getLogger(_name).addFilter(_NoExpectedNoise())

# Changes after a signature that do not count as "modified": none, or only validation
# data (DSS) and document timestamps.
UNCHANGED = (ModificationLevel.NONE, ModificationLevel.LTA_UPDATES)


@dataclass
class SignatureReport:
    field_name: str
    signer_name: str = ""
    title: str = ""
    role: str = ""
    organization: str = ""
    practising_certificate: str = ""
    serial: str = ""
    signing_time: dt.datetime | None = None
    time_source: str = ""  # "timestamp" or "claimed" (the signer's own clock)
    intact: bool = False
    valid: bool = False
    trusted: bool = False
    timestamp_valid: bool | None = None  # None: no signature timestamp
    is_seal: bool = False
    modification_level: str = ""
    modified_after: bool = False
    docmdp_ok: bool | None = None
    bottom_line: bool = False
    revoked_at: dt.datetime | None = None
    revoked_after_signing: bool | None = None
    summary: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Report:
    signatures: list[SignatureReport] = field(default_factory=list)
    sealed: bool = False
    changed_after_seal: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            bool(self.signatures)
            and not self.problems
            and all(s.ok for s in self.signatures)
            and not self.changed_after_seal
        )

    def as_dict(self) -> dict:
        data = asdict(self)
        data["ok"] = self.ok
        for sig, src in zip(data["signatures"], self.signatures, strict=True):
            sig["ok"] = src.ok
        return data


def _attr(name: x509.Name, oid) -> str:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


def _signer_fields(report: SignatureReport, cert: asn1_x509.Certificate) -> None:
    from cryptography.x509.oid import NameOID

    crypto = x509.load_der_x509_certificate(cert.dump())
    subject = crypto.subject
    report.signer_name = _attr(subject, NameOID.COMMON_NAME)
    report.title = _attr(subject, NameOID.TITLE)
    report.role = _attr(subject, NameOID.ORGANIZATIONAL_UNIT_NAME)
    report.organization = _attr(subject, NameOID.ORGANIZATION_NAME)
    serial_attr = _attr(subject, NameOID.SERIAL_NUMBER)
    if serial_attr.startswith("CCHN:"):
        report.practising_certificate = serial_attr[5:]
    report.serial = format(crypto.serial_number, "x")
    cred = (
        Credential.objects.filter(
            serial=report.serial, issuer__subject=crypto.issuer.rfc4514_string()
        )
        .only("revoked_at")
        .first()
    )
    if cred is not None:
        report.revoked_at = cred.revoked_at


def default_trust_roots() -> list[x509.Certificate]:
    return [ca.certificate for ca in CertificateAuthority.objects.filter(kind="root")]


def _current_crls() -> list[bytes]:
    """What the database would publish now: lets verification see revocations that
    happened after the file was signed (and judge them against the signing time)."""
    from benhan.signing import pki

    return [pki.crl_der(ca) for ca in CertificateAuthority.objects.select_related("parent")]


def _spec(trust_roots, crls: list[bytes]) -> PdfSignatureValidationSpec:
    anchors = [
        CertTrustAnchor(asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)))
        if isinstance(c, x509.Certificate)
        else CertTrustAnchor(c)
        for c in trust_roots
    ]
    cert_policy = CertValidationPolicySpec(
        trust_manager=SimpleTrustManager.build(trust_roots=anchors),
        revinfo_policy=CertRevTrustPolicy(
            REQUIRE_REVINFO,
            freshness=None,
            freshness_req_type=FreshnessReqType.MAX_DIFF_REVOCATION_VALIDATION,
        ),
    )
    known = [CRLContainer(asn1_crl.CertificateList.load(der)) for der in crls]
    return PdfSignatureValidationSpec(
        signature_validation_spec=SignatureValidationSpec(
            cert_validation_policy=cert_policy,
            revinfo_gathering_policy=RevocationInfoGatheringSpec(
                online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY
            ),
            local_knowledge=LocalKnowledge(known_crls=known),
        ),
        diff_policy=DEFAULT_DIFF_POLICY,
    )


def _is_seal(sig) -> bool:
    if sig.docmdp_level == fields.MDPPerm.NO_CHANGES:
        return True
    lock = sig.fieldmdp
    return lock is not None and lock.action == fields.FieldMDPAction.ALL


def verify_pdf(
    pdf: bytes, *, trust_roots: list | None = None, current_crls: bool = False
) -> Report:
    """Validate every signature of `pdf`; see the module docstring for what "ok" means.

    trust_roots: cryptography or asn1crypto certificates; default every facility root.
    current_crls: also feed the CRLs the database publishes now. Off by default: the
    validation data embedded at signing time proves the status then (the archive way);
    a revocation recorded in the database is reported per signature instead, and is a
    problem only when it precedes the signing time.
    """
    report = Report()
    try:
        reader = PdfFileReader(BytesIO(pdf), strict=False)
        embedded = list(reader.embedded_regular_signatures)
    except Exception as exc:  # a damaged file: report, never crash
        report.problems.append(f"not a readable PDF: {exc}")
        return report
    if not embedded:
        report.problems.append("the document has no signatures")
        return report
    for sig in reader.embedded_signatures:
        _integrity_once(sig)
    roots = default_trust_roots() if trust_roots is None else trust_roots
    spec = _spec(roots, _current_crls() if current_crls else [])
    timing = ValidationTimingInfo.now()
    results = asyncio.run(_validate_all(embedded, spec, timing))
    for sig, result in zip(embedded, results, strict=True):
        report.signatures.append(_report_one(sig, result))
    seals = [i for i, s in enumerate(report.signatures) if s.is_seal]
    if seals:
        report.sealed = True
        first = seals[0]
        seal = report.signatures[first]
        if seal.modified_after or first != len(report.signatures) - 1:
            report.changed_after_seal = True
            seal.problems.append("the document was changed after the seal")
    return report


def _integrity_once(sig) -> None:
    """Run a signature's integrity check and difference analysis once per document.

    pyHanko's LTA validation of each signature recomputes the integrity (hash and
    difference analysis) of every signature in the file to gather proof of existence
    from the timestamps: n signatures cost n * (n + 1) difference analyses. The
    result depends only on the file and the diff policy, both fixed for one reader, so
    the first result stands for the later calls on the same signature object.
    """
    compute = sig.compute_integrity_info
    done: set = set()

    def once(diff_policy=None, skip_diff=False):
        key = id(diff_policy or DEFAULT_DIFF_POLICY)
        if (key, False) in done or (key, skip_diff) in done:
            return
        compute(diff_policy, skip_diff=skip_diff)
        done.add((key, skip_diff))

    sig.compute_integrity_info = once


async def _validate_all(embedded, spec, timing):
    out = []
    for sig in embedded:
        try:
            out.append(await ades_lta_validation(sig, spec, timing_info=timing))
        except Exception as exc:
            out.append(exc)
    return out


def _report_one(sig, result) -> SignatureReport:
    rep = SignatureReport(field_name=sig.field_name or "")
    rep.is_seal = _is_seal(sig)
    try:
        _signer_fields(rep, sig.signer_cert)
    except Exception as exc:
        rep.problems.append(f"unreadable signer certificate: {exc}")
    if isinstance(result, Exception):
        rep.problems.append(f"validation error: {result}")
        rep.summary = "INVALID"
        return rep
    status = result.api_status
    if status is None:
        rep.problems.append(f"validation failed: {result.ades_subindic} {result.failure_msg or ''}")
        # Intact/valid are still known from the raw cryptographic check.
        try:
            sig.compute_integrity_info()
            rep.intact = bool(sig.compute_digest() and sig.intact)
        except Exception:  # noqa: S110
            pass
        rep.summary = str(result.ades_subindic)
        return rep
    rep.intact = status.intact
    rep.valid = status.valid
    rep.trusted = status.trusted
    rep.bottom_line = status.bottom_line
    rep.docmdp_ok = status.docmdp_ok
    ts = status.timestamp_validity
    if ts is not None:
        rep.timestamp_valid = bool(ts.intact and ts.valid and ts.trusted)
        rep.signing_time = ts.timestamp
        rep.time_source = "timestamp"
    else:
        rep.signing_time = status.signer_reported_dt
        rep.time_source = "claimed"
    level = status.modification_level
    rep.modification_level = level.name if level is not None else "UNKNOWN"
    rep.modified_after = status.coverage != SignatureCoverageLevel.ENTIRE_FILE and (
        level is None or level not in UNCHANGED
    )
    try:
        rep.summary = status.summary()
    except Exception:
        rep.summary = ""
    if rep.revoked_at is not None and rep.signing_time is not None:
        rep.revoked_after_signing = rep.revoked_at > rep.signing_time
        if not rep.revoked_after_signing:
            rep.problems.append("the certificate was revoked before this signature was made")
    if not status.intact:
        rep.problems.append("the signed content was changed (hash mismatch)")
    elif not status.valid:
        rep.problems.append("the cryptographic signature is invalid")
    if not status.trusted:
        rep.problems.append(f"the certificate is not trusted ({result.ades_subindic})")
    if rep.timestamp_valid is False:
        rep.problems.append("the signature timestamp is not valid")
    if level is None or status.docmdp_ok is None:
        rep.problems.append("changes after this signature could not be analysed")
    elif not status.docmdp_ok:
        rep.problems.append(f"changes after this signature are not allowed ({level.name})")
    if not status.bottom_line and not rep.problems:
        rep.problems.append("pyHanko's overall judgement is negative")
    return rep
