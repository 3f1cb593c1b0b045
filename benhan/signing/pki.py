"""The facility's internal PKI: root and issuing CA, staff, seal and TSA certificates,
revocation and CRLs, PINs.

Stable API (called by the records app and the command line):

    ensure_facility_pki(facility) -> None
    issue_staff_credential(user, pin, practising_certificate=None, *, actor=None) -> Credential
    active_credential(user) -> Credential | None
    seal_credential(facility) -> Credential;  tsa_credential(facility) -> Credential
    revoke(credential, reason, actor) -> None
    crl_der(ca) -> bytes
    change_pin(credential, old, new) -> None
    load_private_key(credential, pin) -> private key     (WrongPin, PinLocked)
    load_service_key(credential) -> private key          (seal and TSA keys)
    trust_roots() -> list[x509.Certificate]               (every facility's root)
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone, translation

from benhan.accounts.models import Facility
from benhan.audit.chain import Actor, append
from benhan.signing import keys
from benhan.signing.models import CertificateAuthority, Credential

PIN_RE = re.compile(r"\d{6,12}")

ROOT_YEARS = 20
ISSUING_YEARS = 10
SEAL_YEARS = 5
TSA_YEARS = 10
CRL_DAYS = 7
# A CRL is re-signed at most this often per process (revoking clears the cache).
CRL_CACHE_SECONDS = 300

# Revocation reasons accepted by revoke(), as in RFC 5280.
REASONS = {
    "unspecified": x509.ReasonFlags.unspecified,
    "key_compromise": x509.ReasonFlags.key_compromise,
    "affiliation_changed": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessation_of_operation": x509.ReasonFlags.cessation_of_operation,
}


class SigningError(Exception):
    """Base of every error a signing step reports to the user."""


class InvalidPin(SigningError, ValueError):  # noqa: N818 - public API name
    """The PIN does not follow the rules (6–12 digits)."""


class WrongPin(SigningError):  # noqa: N818 - public API name
    def __init__(self, attempts_left: int):
        super().__init__(f"Wrong PIN ({attempts_left} attempts left)")
        self.attempts_left = attempts_left


class PinLocked(SigningError):  # noqa: N818 - public API name
    """Too many wrong PINs: an administrator issues a new credential."""


class CredentialUnusable(SigningError):  # noqa: N818 - public API name
    """Revoked, expired or not yet valid."""


class NoCredential(SigningError):  # noqa: N818 - public API name
    """The user (or facility) has no signing certificate yet."""


# --- PIN rules ---


def validate_pin(pin: str) -> None:
    if not isinstance(pin, str) or not PIN_RE.fullmatch(pin):
        raise InvalidPin("A signing PIN is 6 to 12 digits.")
    if len(set(pin)) == 1 or pin in "01234567890123" or pin in "98765432109876":
        raise InvalidPin("A signing PIN must not be one repeated digit or a simple sequence.")


# --- Certificates ---


def _now() -> dt.datetime:
    return timezone.now().replace(microsecond=0)


def _years(start: dt.datetime, years: int) -> dt.datetime:
    return start + dt.timedelta(days=365 * years + years // 4)


def _sig_hash(key) -> hashes.HashAlgorithm:
    return hashes.SHA256() if isinstance(key, ec.EllipticCurvePrivateKey) else hashes.SHA384()


def _ski(cert_or_key) -> x509.SubjectKeyIdentifier:
    public = cert_or_key.public_key()
    return x509.SubjectKeyIdentifier.from_public_key(public)


def _facility_name(facility: Facility, *extra: x509.NameAttribute) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, facility.name[:64]),
            *extra,
        ]
    )


def _build(
    *,
    subject: x509.Name,
    public_key,
    issuer_cert: x509.Certificate | None,
    issuer_key,
    not_before: dt.datetime,
    not_after: dt.datetime,
    ca: bool,
    path_length: int | None = None,
    key_usage: dict[str, bool],
    eku: list | None = None,
    crl_url: str | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=key_usage.get("digital_signature", False),
                content_commitment=key_usage.get("content_commitment", False),
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            ),
            critical=False,
        )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=True)
    if crl_url:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        full_name=[x509.UniformResourceIdentifier(crl_url)],
                        relative_name=None,
                        reasons=None,
                        crl_issuer=None,
                    )
                ]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, _sig_hash(issuer_key))


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _serial_hex(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


def _save_credential(
    *, facility, user, issuer: CertificateAuthority, kind, cert, key, pin=None
) -> Credential:
    serial = _serial_hex(cert)
    return Credential.objects.create(
        facility=facility,
        user=user,
        issuer=issuer,
        kind=kind,
        cert_pem=_pem(cert),
        serial=serial,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_encrypted=keys.encrypt_key(key, serial, pin),
    )


def _audit(action: str, facility_id: int, actor: Actor | None, obj, detail=None, reason=""):
    user = actor.user if actor and getattr(actor.user, "is_authenticated", False) else None
    append(
        action=action,
        actor=user,
        facility_id=facility_id,
        object_type=obj._meta.model_name,
        object_id=obj.pk,
        ip=actor.ip if actor else None,
        reason=reason,
        detail=detail,
    )


# --- Facility PKI ---


def ensure_facility_pki(facility: Facility, *, key_type: str | None = None) -> None:
    """Create what is missing of the facility's root CA, issuing CA, seal and TSA
    credentials. Idempotent; safe to run at every start-up."""
    with transaction.atomic():
        # Serialise concurrent first runs for this facility.
        Facility.objects.select_for_update().filter(pk=facility.pk).first()
        root = CertificateAuthority.objects.filter(facility=facility, kind="root").first()
        now = _now()
        if root is None:
            key = keys.generate_key(key_type)
            name = _facility_name(
                facility, x509.NameAttribute(NameOID.COMMON_NAME, f"{facility.name[:50]} Root CA")
            )
            cert = _build(
                subject=name,
                public_key=key.public_key(),
                issuer_cert=None,
                issuer_key=key,
                not_before=now - dt.timedelta(minutes=5),
                not_after=_years(now, ROOT_YEARS),
                ca=True,
                path_length=1,
                key_usage={},
            )
            root = CertificateAuthority(
                facility=facility, kind="root", subject=name.rfc4514_string(), cert_pem=_pem(cert)
            )
            root.key_encrypted = keys.encrypt_key(key, _serial_hex(cert))
            root.save()
            _audit("pki.root_ca.create", facility.pk, None, root)
        issuing = CertificateAuthority.objects.filter(facility=facility, kind="issuing").first()
        if issuing is None:
            root_key = load_ca_key(root)
            key = keys.generate_key(key_type)
            name = _facility_name(
                facility,
                x509.NameAttribute(NameOID.COMMON_NAME, f"{facility.name[:50]} Issuing CA"),
            )
            cert = _build(
                subject=name,
                public_key=key.public_key(),
                issuer_cert=root.certificate,
                issuer_key=root_key,
                not_before=now - dt.timedelta(minutes=5),
                not_after=min(_years(now, ISSUING_YEARS), root.certificate.not_valid_after_utc),
                ca=True,
                path_length=0,
                key_usage={},
                crl_url=root.crl_url,
            )
            issuing = CertificateAuthority(
                facility=facility,
                kind="issuing",
                parent=root,
                subject=name.rfc4514_string(),
                cert_pem=_pem(cert),
            )
            issuing.key_encrypted = keys.encrypt_key(key, _serial_hex(cert))
            issuing.save()
            _audit("pki.issuing_ca.create", facility.pk, None, issuing)
        for kind in ("seal", "tsa"):
            if not _service_credentials(facility, kind).exists():
                cred = _issue_service(facility, issuing, kind, key_type)
                _audit(f"pki.{kind}.issue", facility.pk, None, cred, {"serial": cred.serial})


def _service_credentials(facility, kind):
    return Credential.objects.filter(
        facility=facility, kind=kind, revoked_at__isnull=True, not_after__gt=timezone.now()
    )


def _issue_service(facility, issuing: CertificateAuthority, kind: str, key_type=None):
    now = _now()
    key = keys.generate_key(key_type)
    if kind == "seal":
        name = _facility_name(facility, x509.NameAttribute(NameOID.COMMON_NAME, facility.name[:64]))
        years, eku = SEAL_YEARS, None
        usage = {"digital_signature": True, "content_commitment": True}
    else:
        name = _facility_name(
            facility,
            x509.NameAttribute(NameOID.COMMON_NAME, f"{facility.name[:40]} Timestamp Service"),
        )
        years, eku = TSA_YEARS, [ExtendedKeyUsageOID.TIME_STAMPING]
        usage = {"digital_signature": True, "content_commitment": True}
    cert = _build(
        subject=name,
        public_key=key.public_key(),
        issuer_cert=issuing.certificate,
        issuer_key=load_ca_key(issuing),
        not_before=now - dt.timedelta(minutes=5),
        not_after=min(_years(now, years), issuing.certificate.not_valid_after_utc),
        ca=False,
        key_usage=usage,
        eku=eku,
        crl_url=issuing.crl_url,
    )
    return _save_credential(
        facility=facility, user=None, issuer=issuing, kind=kind, cert=cert, key=key
    )


def root_ca(facility: Facility) -> CertificateAuthority:
    return CertificateAuthority.objects.get(facility=facility, kind="root")


def issuing_ca(facility: Facility) -> CertificateAuthority:
    return CertificateAuthority.objects.select_related("parent").get(
        facility=facility, kind="issuing"
    )


def trust_roots() -> list[x509.Certificate]:
    """Every facility's root certificate, plus the roots in BENHAN_TRUSTED_ROOTS_FILE
    (the CAs of tokens and remote signing services staff use): what verification trusts."""
    roots = [
        ca.certificate for ca in CertificateAuthority.objects.filter(kind="root").order_by("pk")
    ]
    extra = getattr(settings, "TRUSTED_ROOTS_FILE", "")
    if extra:
        from pathlib import Path

        roots += x509.load_pem_x509_certificates(Path(extra).read_bytes())
    return roots


def chain(credential: Credential) -> list[x509.Certificate]:
    """The credential's CA certificates, issuing CA first, root last."""
    issuing = credential.issuer
    out = [issuing.certificate]
    if issuing.parent_id:
        out.append(issuing.parent.certificate)
    return out


def seal_credential(facility: Facility) -> Credential:
    cred = _service_credentials(facility, "seal").select_related("issuer__parent").last()
    if cred is None:
        raise NoCredential(f"{facility} has no seal certificate: run `benhan pki init`.")
    return cred


def tsa_credential(facility: Facility) -> Credential:
    cred = _service_credentials(facility, "tsa").select_related("issuer__parent").last()
    if cred is None:
        raise NoCredential(f"{facility} has no timestamp certificate: run `benhan pki init`.")
    return cred


# --- Staff credentials ---


def _role_label(user) -> str:
    with translation.override("vi"):
        return str(user.get_role_display())


def staff_subject(user, practising_certificate: str | None) -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, user.facility.name[:64]),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _role_label(user)[:64]),
    ]
    if user.title:
        attrs.append(x509.NameAttribute(NameOID.TITLE, user.title[:64]))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, (user.full_name or user.username)[:64]))
    if practising_certificate:
        # As Vietnamese CAs put "CCCD:…" in serialNumber: CCHN = chứng chỉ hành nghề.
        attrs.append(
            x509.NameAttribute(NameOID.SERIAL_NUMBER, f"CCHN:{practising_certificate}"[:64])
        )
    attrs.append(x509.NameAttribute(NameOID.USER_ID, user.username[:64]))
    return x509.Name(attrs)


def issue_staff_credential(
    user,
    pin: str,
    practising_certificate: str | None = None,
    *,
    actor: Actor | None = None,
    key_type: str | None = None,
) -> Credential:
    """A new certificate and key for `user`, the key encrypted under `pin`.

    The user's earlier active credentials are revoked as superseded.
    """
    validate_pin(pin)
    if user.facility_id is None:
        raise SigningError(f"{user} belongs to no facility.")
    if practising_certificate is None:
        practising_certificate = user.practising_certificate or None
    ensure_facility_pki(user.facility)
    issuing = issuing_ca(user.facility)
    key = keys.generate_key(key_type)
    now = _now()
    cert = _build(
        subject=staff_subject(user, practising_certificate),
        public_key=key.public_key(),
        issuer_cert=issuing.certificate,
        issuer_key=load_ca_key(issuing),
        not_before=now - dt.timedelta(minutes=5),
        not_after=min(
            _years(now, settings.SIGNING_STAFF_CERT_YEARS), issuing.certificate.not_valid_after_utc
        ),
        ca=False,
        key_usage={"digital_signature": True, "content_commitment": True},
        crl_url=issuing.crl_url,
    )
    with transaction.atomic():
        for old in Credential.objects.select_for_update().filter(
            user=user, kind="staff", revoked_at__isnull=True
        ):
            revoke(old, "superseded", actor)
        cred = _save_credential(
            facility=user.facility,
            user=user,
            issuer=issuing,
            kind="staff",
            cert=cert,
            key=key,
            pin=pin,
        )
        _audit(
            "pki.credential.issue",
            user.facility_id,
            actor,
            cred,
            {"serial": cred.serial, "user": user.username},
        )
    return cred


def active_credential(user) -> Credential | None:
    """The user's current staff credential (not revoked; may be locked or expired)."""
    return (
        Credential.objects.select_related("issuer__parent", "facility")
        .filter(user=user, kind="staff", revoked_at__isnull=True)
        .order_by("-created_at", "-pk")
        .first()
    )


def revoke(credential: Credential, reason: str, actor: Actor | None) -> None:
    """Revoke a certificate from now on. What it signed before stays valid."""
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {', '.join(REASONS)}")
    with transaction.atomic():
        cred = Credential.objects.select_for_update().get(pk=credential.pk)
        if cred.revoked_at is not None:
            return
        # Rounded up to the second (CRL dates have no fractions), so a revocation is never
        # dated before a signature made in the same second.
        cred.revoked_at = _now() + dt.timedelta(seconds=1)
        cred.revocation_reason = reason
        cred.save(update_fields=["revoked_at", "revocation_reason"])
        _audit(
            "pki.credential.revoke",
            cred.facility_id,
            actor,
            cred,
            {"serial": cred.serial},
            reason=reason,
        )
        transaction.on_commit(lambda: _crl_cache.pop(cred.issuer_id, None))
    credential.revoked_at = cred.revoked_at
    credential.revocation_reason = reason
    _crl_cache.pop(cred.issuer_id, None)


# --- CRLs ---

_crl_cache: dict[int, tuple[float, str, bytes]] = {}
_crl_lock = threading.Lock()


def crl_der(ca: CertificateAuthority) -> bytes:
    """The CA's current CRL (DER), signed by the CA; re-signed every few minutes."""
    # Keyed by the certificate too: a CA id can come back after a rolled-back transaction.
    cached = _crl_cache.get(ca.pk)
    if cached and cached[1] == ca.cert_pem and time.monotonic() - cached[0] < CRL_CACHE_SECONDS:
        return cached[2]
    with _crl_lock:
        der = _make_crl(ca)
        _crl_cache[ca.pk] = (time.monotonic(), ca.cert_pem, der)
        return der


def _make_crl(ca: CertificateAuthority) -> bytes:
    with transaction.atomic():
        CertificateAuthority.objects.filter(pk=ca.pk).update(
            next_crl_number=F("next_crl_number") + 1
        )
        number = (
            CertificateAuthority.objects.values_list("next_crl_number", flat=True).get(pk=ca.pk) - 1
        )
    now = _now()
    cert = ca.certificate
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(cert.subject)
        .last_update(now - dt.timedelta(seconds=5))
        .next_update(now + dt.timedelta(days=CRL_DAYS))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            ),
            critical=False,
        )
    )
    revoked = Credential.objects.filter(issuer=ca, revoked_at__isnull=False)
    for cred in revoked.only("serial", "revoked_at", "revocation_reason"):
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(int(cred.serial, 16))
            .revocation_date(cred.revoked_at)
        )
        reason = REASONS.get(cred.revocation_reason)
        if reason is not None and reason != x509.ReasonFlags.unspecified:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    # Revoked child CAs would be listed here too; Bệnh Án never revokes its issuing CA.
    key = load_ca_key(ca)
    return builder.sign(key, _sig_hash(key)).public_bytes(serialization.Encoding.DER)


def facility_crls(facility: Facility) -> list[bytes]:
    """The CRLs a signature of this facility needs: the root's and the issuing CA's."""
    issuing = issuing_ca(facility)
    return [crl_der(issuing.parent), crl_der(issuing)]


# --- Private keys ---

_key_cache: dict[tuple[str, int, bytes], object] = {}


def load_ca_key(ca: CertificateAuthority):
    return _cached_service_key("ca", ca.pk, bytes(ca.key_encrypted), _serial_hex(ca.certificate))


def load_service_key(credential: Credential):
    """The seal's or the TSA's private key (encrypted under the CA passphrase)."""
    if credential.kind == "staff":
        raise ValueError("staff keys need the PIN: use load_private_key")
    return _cached_service_key(
        "cred", credential.pk, bytes(credential.key_encrypted), credential.serial
    )


def _cached_service_key(prefix: str, pk: int, blob: bytes, serial: str):
    cache_key = (prefix, pk, blob)
    key = _key_cache.get(cache_key)
    if key is None:
        key = keys.decrypt_key(blob, serial)
        _key_cache[cache_key] = key
    return key


def load_private_key(credential: Credential, pin: str):
    """Decrypt the staff key with the PIN.

    Raises WrongPin (and counts the attempt), PinLocked after SIGNING_PIN_ATTEMPTS wrong
    PINs in a row, CredentialUnusable when revoked or expired. A right PIN resets the count.
    """
    limit = settings.SIGNING_PIN_ATTEMPTS
    outcome: Exception | None = None
    with transaction.atomic():
        cred = Credential.objects.select_for_update().get(pk=credential.pk)
        if cred.revoked_at is not None:
            raise CredentialUnusable("This signing certificate has been revoked.")
        if cred.is_expired or cred.is_not_yet_valid:
            raise CredentialUnusable("This signing certificate is not valid now.")
        if cred.locked_at is not None:
            raise PinLocked("Signing is locked after too many wrong PINs.")
        try:
            key = keys.decrypt_key(bytes(cred.key_encrypted), cred.serial, pin)
        except keys.DecryptionFailed:
            cred.failed_pin_attempts += 1
            fields = ["failed_pin_attempts"]
            if cred.failed_pin_attempts >= limit:
                cred.locked_at = timezone.now()
                fields.append("locked_at")
                outcome = PinLocked("Signing is locked after too many wrong PINs.")
                _audit("pki.credential.lock", cred.facility_id, None, cred)
            else:
                outcome = WrongPin(limit - cred.failed_pin_attempts)
            cred.save(update_fields=fields)
        else:
            if cred.failed_pin_attempts:
                cred.failed_pin_attempts = 0
                cred.save(update_fields=["failed_pin_attempts"])
    # Raised outside the atomic block, so the counted attempt is committed.
    credential.failed_pin_attempts = cred.failed_pin_attempts
    credential.locked_at = cred.locked_at
    if outcome is not None:
        raise outcome
    return key


def change_pin(credential: Credential, old: str, new: str, *, actor: Actor | None = None) -> None:
    validate_pin(new)
    key = load_private_key(credential, old)
    with transaction.atomic():
        cred = Credential.objects.select_for_update().get(pk=credential.pk)
        cred.key_encrypted = keys.encrypt_key(key, cred.serial, new)
        cred.save(update_fields=["key_encrypted"])
        _audit("pki.credential.pin_change", cred.facility_id, actor, cred)
    credential.key_encrypted = cred.key_encrypted


def unlock(credential: Credential, actor: Actor | None) -> None:
    """Clear a PIN lock (an administrator, after checking who asks)."""
    with transaction.atomic():
        Credential.objects.filter(pk=credential.pk).update(failed_pin_attempts=0, locked_at=None)
        _audit("pki.credential.unlock", credential.facility_id, actor, credential)
    credential.failed_pin_attempts = 0
    credential.locked_at = None
