"""Which signer a staff member's signature goes through, and what secret it asks for."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.utils.translation import gettext_lazy as _

from benhan.signing.models import SignerProfile

SECRET_LABELS = {
    SignerProfile.Method.INTERNAL: _("Signing PIN"),
    SignerProfile.Method.TOKEN: _("Token PIN"),
    SignerProfile.Method.REMOTE: _("One-time code from your signing app"),
}


def method_for(user) -> str:
    profile = SignerProfile.objects.filter(user=user).first()
    return profile.method if profile else SignerProfile.Method.INTERNAL


def secret_label(user) -> str:
    return str(SECRET_LABELS[method_for(user)])


@contextmanager
def signer_for_user(user, secret: str) -> Iterator:
    """A pyHanko signer for `user`, unlocked with `secret` (PIN, token PIN or OTP).

    Raises the signing errors of the method (all subclasses of pki.SigningError). Call
    it outside the signing transaction: a wrong internal PIN must be counted.
    """
    from benhan.signing import pades, pki

    profile = SignerProfile.objects.filter(user=user).first()
    method = profile.method if profile else SignerProfile.Method.INTERNAL
    if method == SignerProfile.Method.TOKEN:
        from benhan.signing.pkcs11 import pkcs11_signer_from_settings

        signer = pkcs11_signer_from_settings(
            secret,
            key_label=profile.token_key_label or None,
            cert_label=profile.token_cert_label or None,
        )
        with signer:
            yield signer
        return
    if method == SignerProfile.Method.REMOTE:
        from benhan.signing.remote import remote_signer_from_settings

        yield remote_signer_from_settings(
            profile.csc_credential_id, secret, description=user.full_name
        )
        return
    credential = pki.active_credential(user)
    if credential is None:
        raise pki.NoCredential(user.get_username())
    yield pades.signer_for_credential(credential, secret)
