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
import binascii
import contextvars
import dataclasses
import datetime as dt
import importlib.metadata
import logging
import re
from dataclasses import asdict, dataclass, field
from io import BytesIO

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils import generic as pdf_generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields
from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY, ModificationLevel
from pyhanko.sign.validation import ades as pyhanko_ades
from pyhanko.sign.validation.ades import ades_lta_validation
from pyhanko.sign.validation.errors import SignatureValidationError
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
from pyhanko_certvalidator.ltv.poe import POEManager
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
    from benhan.signing import pki

    return pki.trust_roots()  # facility roots + BENHAN_TRUSTED_ROOTS_FILE


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
    token = _DOCUMENT.set({})  # per-document caches, see _install_document_caches
    try:
        return _verify(pdf, trust_roots, current_crls)
    finally:
        _DOCUMENT.reset(token)


def _verify(pdf: bytes, trust_roots: list | None, current_crls: bool) -> Report:
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


# --- Per-document caches --------------------------------------------------------------
#
# pyHanko validates each signature as if it were alone in the file. For the second and
# later signatures of one document that repeats work whose result cannot differ:
#
# - the proof-of-existence chain (every document timestamp, validated against the DSS)
#   and the DSS parsed into certificates and CRLs: both depend only on the file, the
#   validation spec and the validation time, all fixed during one verify_pdf call;
# - comparing certificate and CRL names (RFC 5280 7.1: RFC 4518 string preparation of
#   each attribute), thousands of times, on freshly parsed copies of the same names;
# - the signatures' /Contents hex strings, which pyHanko's parser reads byte by byte.
#
# The replacements below are active only while verify_pdf runs (the _DOCUMENT context
# variable holds the cache of the document being verified); anywhere else, and on any
# input they do not recognise, they call pyHanko's / asn1crypto's own code. They are
# installed only for the versions they were written against (the names patched are
# module-private): after an upgrade verify_pdf is slower, not different.

_DOCUMENT: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "benhan_verify_document", default=None
)
_PATCHED_FOR = {"pyHanko": "0.38.0", "asn1crypto": "1.5.1"}


def _spec_key(spec: SignatureValidationSpec) -> tuple:
    """Identity of everything in a validation spec, except the fetcher backend pyHanko
    creates for each operation (never used: fetching is LOCAL_ONLY). Local knowledge is
    compared item by item, since pyHanko builds new lists around the same objects."""
    lk, rg = spec.local_knowledge, spec.revinfo_gathering_policy
    return (
        tuple(
            id(getattr(spec, f.name))
            for f in dataclasses.fields(spec)
            if f.name not in ("local_knowledge", "revinfo_gathering_policy")
        ),
        tuple(tuple(map(id, getattr(lk, f.name))) for f in dataclasses.fields(lk)),
        tuple(
            id(getattr(rg, f.name)) for f in dataclasses.fields(rg) if f.name != "fetcher_backend"
        ),
    )


def _install_document_caches() -> None:
    try:
        versions = {name: importlib.metadata.version(name) for name in _PATCHED_FOR}
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return
    if versions != _PATCHED_FOR:
        logger.info("%s: verify_pdf runs without its per-document caches", versions)
        return

    build_poe_index = pyhanko_ades._build_prima_facie_poe_index_from_pdf_timestamps
    dss_knowledge = pyhanko_ades._dss_to_local_knowledge
    validate_poe = pyhanko_ades._validate_prima_facie_poe
    read_hex = pdf_generic.read_hex_string_from_stream

    def cached_poe_index(r, include_content_ts, diff_policy):
        cache = _DOCUMENT.get()
        if cache is None:
            return build_poe_index(r, include_content_ts, diff_policy)
        key = ("poe_index", id(r), include_content_ts, id(diff_policy))
        if key not in cache:
            cache[key] = (r, diff_policy, build_poe_index(r, include_content_ts, diff_policy))
        return cache[key][-1]

    def cached_dss_knowledge(reader):
        cache = _DOCUMENT.get()
        if cache is None:
            return dss_knowledge(reader)
        key = ("dss", id(reader))
        if key not in cache:
            cache[key] = (reader, dss_knowledge(reader))
        return cache[key][-1]

    async def cached_validate_poe(prima_facie_poe_sets, validation_spec, cur_timing_info=None):
        cache = _DOCUMENT.get()
        if cache is None or cur_timing_info is None:
            return await validate_poe(prima_facie_poe_sets, validation_spec, cur_timing_info)
        key = ("poe", id(prima_facie_poe_sets), _spec_key(validation_spec), id(cur_timing_info))
        if key not in cache:
            try:
                outcome = await validate_poe(prima_facie_poe_sets, validation_spec, cur_timing_info)
            except SignatureValidationError as exc:
                outcome = exc
            # keep the keyed objects alive so that their ids stay theirs
            cache[key] = (prima_facie_poe_sets, validation_spec, cur_timing_info, outcome)
        outcome = cache[key][-1]
        if isinstance(outcome, SignatureValidationError):
            raise outcome
        # pyHanko goes on registering the signature's own POE in the manager it gets:
        # each signature gets a fresh one with the chain's POEs, as without the cache.
        fresh = POEManager(current_dt_override=outcome._current_dt_override)
        fresh._poes = dict(outcome._poes)
        return fresh

    def fast_read_hex(stream):
        # Same result as pyHanko's reader (PDF whitespace ignored, odd digit count
        # padded with 0); anything else (comments, bad digits, no end) goes to it.
        if _DOCUMENT.get() is None or not isinstance(stream, BytesIO):
            return read_hex(stream)
        start = stream.tell()
        data = stream.getvalue()
        end = data.find(b">", start + 1)
        if data[start : start + 1] != b"<" or end < 0 or data.find(b"%", start, end) >= 0:
            return read_hex(stream)  # nothing consumed yet: pyHanko decides
        digits = data[start + 1 : end].translate(None, _PDF_WHITESPACE)
        if not _HEX_ONLY.fullmatch(digits):
            return read_hex(stream)
        stream.seek(end + 1)
        if len(digits) % 2:
            digits += b"0"
        return pdf_generic.pdf_string(binascii.unhexlify(digits))

    # Name comparison and the name keys of the certificate registries: functions of the
    # encoded names.
    names_equal = asn1_x509.RDNSequence.__eq__
    name_key = asn1_x509.RDNSequence.hashable.fget

    def cached_names_equal(self, other):
        cache = _DOCUMENT.get()
        if cache is None or not isinstance(other, asn1_x509.RDNSequence):
            return names_equal(self, other)
        key = ("name=", self.dump(), other.dump())
        try:
            return cache[key]
        except KeyError:
            result = cache[key] = names_equal(self, other)
            return result

    def cached_name_key(self):
        cache = _DOCUMENT.get()
        if cache is None:
            return name_key(self)
        key = ("name", self.dump())
        try:
            return cache[key]
        except KeyError:
            result = cache[key] = name_key(self)
            return result

    pyhanko_ades._build_prima_facie_poe_index_from_pdf_timestamps = cached_poe_index
    pyhanko_ades._dss_to_local_knowledge = cached_dss_knowledge
    pyhanko_ades._validate_prima_facie_poe = cached_validate_poe
    pdf_generic.read_hex_string_from_stream = fast_read_hex
    asn1_x509.RDNSequence.__eq__ = cached_names_equal
    asn1_x509.RDNSequence.hashable = property(cached_name_key)


_PDF_WHITESPACE = b" \n\r\t\f\x00"
_HEX_ONLY = re.compile(rb"[0-9a-fA-F]*")


_install_document_caches()


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
