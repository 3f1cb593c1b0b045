"""The facility's certificate authorities and the credentials they issue.

Private keys never leave this table unencrypted: the CA, seal and timestamp keys are
encrypted under a key derived from settings.CA_PASSPHRASE; a staff key under the
staff member's signing PIN (see benhan/signing/keys.py).
"""

from __future__ import annotations

from functools import cached_property

from cryptography import x509
from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from benhan.accounts.models import Facility


class CertificateAuthority(models.Model):
    """A root or issuing CA of one facility."""

    class Kind(models.TextChoices):
        ROOT = "root", _("Root CA")
        ISSUING = "issuing", _("Issuing CA")

    facility = models.ForeignKey(
        Facility, on_delete=models.PROTECT, related_name="certificate_authorities"
    )
    kind = models.CharField(max_length=10, choices=Kind)
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="children"
    )
    subject = models.CharField(max_length=300)
    cert_pem = models.TextField()
    key_encrypted = models.BinaryField()
    next_crl_number = models.BigIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("certificate authority")
        verbose_name_plural = _("certificate authorities")
        constraints = [models.UniqueConstraint(fields=["facility", "kind"], name="ca_unique_kind")]

    def __str__(self) -> str:
        return self.subject

    @cached_property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem.encode())

    @property
    def crl_url(self) -> str:
        return f"{settings.PUBLIC_URL}/pki/crl/{self.pk}.crl"


class Credential(models.Model):
    """A certificate and its encrypted private key: a staff member's, the seal, the TSA."""

    class Kind(models.TextChoices):
        STAFF = "staff", _("Staff signature")
        SEAL = "seal", _("Facility seal")
        TSA = "tsa", _("Timestamp service")

    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="credentials")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="signing_credentials",
        help_text=_("Empty for the facility seal and the timestamp service."),
    )
    issuer = models.ForeignKey(
        CertificateAuthority, on_delete=models.PROTECT, related_name="issued"
    )
    kind = models.CharField(max_length=10, choices=Kind)
    cert_pem = models.TextField()
    serial = models.CharField(max_length=64, help_text=_("Certificate serial number, hex"))
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    key_encrypted = models.BinaryField()
    failed_pin_attempts = models.PositiveSmallIntegerField(default=0)
    locked_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revocation_reason = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("signing credential")
        verbose_name_plural = _("signing credentials")
        constraints = [
            models.UniqueConstraint(fields=["issuer", "serial"], name="credential_unique_serial")
        ]
        indexes = [models.Index(fields=["user", "kind"], name="credential_user_kind")]

    def __str__(self) -> str:
        who = self.user or self.get_kind_display()
        return f"{who} ({self.serial[:12]})"

    @cached_property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem.encode())

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_locked(self) -> bool:
        return self.locked_at is not None

    @property
    def is_expired(self) -> bool:
        return timezone.now() >= self.not_after

    @property
    def is_not_yet_valid(self) -> bool:
        return timezone.now() < self.not_before

    @property
    def is_usable(self) -> bool:
        """May sign now: not revoked, not locked, within its validity."""
        return not (self.is_revoked or self.is_locked or self.is_expired or self.is_not_yet_valid)

    @property
    def status(self) -> str:
        if self.is_revoked:
            return "revoked"
        if self.is_locked:
            return "locked"
        if self.is_expired:
            return "expired"
        if self.is_not_yet_valid:
            return "not_yet_valid"
        return "active"


class SignerProfile(models.Model):
    """How a staff member signs: the internal key (default), a token, or a remote service.

    Staff without a profile sign with their internal key. The administrator sets this
    in the admin pages for staff who use a USB token on the server or a CSC service.
    """

    class Method(models.TextChoices):
        INTERNAL = "internal", _("Internal key, unlocked by a PIN")
        TOKEN = "token", _("PKCS#11 token or HSM on the server")
        REMOTE = "remote", _("Remote signing service (CSC API)")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="signer_profile"
    )
    method = models.CharField(_("signing method"), max_length=10, choices=Method,
                              default=Method.INTERNAL)  # fmt: skip
    token_key_label = models.CharField(_("key label on the token"), max_length=100, blank=True)
    token_cert_label = models.CharField(_("certificate label on the token"), max_length=100,
                                        blank=True)  # fmt: skip
    csc_credential_id = models.CharField(_("credential ID at the signing service"),
                                         max_length=200, blank=True)  # fmt: skip

    class Meta:
        verbose_name = _("signing method")
        verbose_name_plural = _("signing methods")

    def __str__(self) -> str:
        return f"{self.user}: {self.get_method_display()}"
