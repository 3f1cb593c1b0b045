"""Signing with a key that never leaves a PKCS#11 token (USB token, smart card or HSM).

`pkcs11_signer()` opens a logged-in session on the token and returns a pyHanko
`Signer` that is also a context manager, so the session is closed after signing::

    with pkcs11_signer(module, "Nguyen Van A", pin, key_label="sign") as signer:
        signed = sign_pdf(pdf, signer=signer, field_name="BacSi")

The token is found by its label, the key (and its certificate) by their labels on the
token. Everything that can go wrong at the token is raised as a `TokenError` subclass
whose message can be shown to staff as is; the technical cause is chained
(`raise ... from`) for the log.

Configuration: settings ``PKCS11_MODULE``, ``PKCS11_TOKEN_LABEL``, ``PKCS11_KEY_LABEL``,
``PKCS11_CERT_LABEL`` from the environment variables ``BENHAN_PKCS11_*`` (read straight
from the environment while settings.py does not define them); see docs/signers.md.

The PIN is never configured: it is typed by the staff member for each signature.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import pkcs11
from django.conf import settings
from django.utils.translation import gettext as _
from pkcs11 import Attribute, Mechanism, ObjectClass
from pkcs11 import exceptions as p11_exc
from pyhanko.sign.pkcs11 import PKCS11Signer

from benhan.signing.pki import SigningError

__all__ = [
    "Pkcs11ModuleMissing",
    "TokenError",
    "TokenKeyNotFound",
    "TokenLocked",
    "TokenNotFound",
    "TokenSigner",
    "WrongTokenPin",
    "pkcs11_signer",
    "pkcs11_signer_from_settings",
]

logger = logging.getLogger(__name__)


class TokenError(SigningError):
    """A signing token could not be used. The message is meant for staff."""


class Pkcs11ModuleMissing(TokenError):  # noqa: N818 - outcome names, like pki.WrongPin
    """The PKCS#11 module (the token vendor's driver) is not installed or not loadable."""


class TokenNotFound(TokenError):  # noqa: N818 - outcome names, like pki.WrongPin
    """No token with the expected label is plugged in."""


class WrongTokenPin(TokenError):  # noqa: N818 - outcome names, like pki.WrongPin
    """The token refused the PIN."""


class TokenLocked(TokenError):  # noqa: N818 - outcome names, like pki.WrongPin
    """The token's PIN is locked after too many wrong attempts."""


class TokenKeyNotFound(TokenError):  # noqa: N818 - outcome names, like pki.WrongPin
    """The token has no (unique) signing key or certificate with the configured label."""


# python-pkcs11 keeps one `pkcs11.lib` per module path (C_Initialize once per process);
# loading is not thread-safe, so serialise it.
_load_lock = threading.Lock()


def _load_module(module_path: str) -> Any:
    if not module_path or not os.path.isfile(module_path):
        raise Pkcs11ModuleMissing(
            _(
                "The signing token driver is not installed on the server (%(path)s). "
                "Ask the administrator to install it."
            )
            % {"path": module_path or "?"}
        )
    try:
        with _load_lock:
            return pkcs11.lib(module_path)
    except (p11_exc.PKCS11Error, OSError) as exc:
        raise Pkcs11ModuleMissing(
            _(
                "The signing token driver (%(path)s) could not be loaded. "
                "Ask the administrator to check it."
            )
            % {"path": module_path}
        ) from exc


def _find_token(lib: Any, token_label: str) -> Any:
    try:
        return lib.get_token(token_label=token_label)
    except p11_exc.NoSuchToken as exc:
        raise TokenNotFound(
            _(
                "The signing token “%(label)s” was not found. "
                "Check that it is plugged in, then try again."
            )
            % {"label": token_label}
        ) from exc
    except p11_exc.MultipleTokensReturned as exc:
        raise TokenNotFound(
            _(
                "More than one signing token is labelled “%(label)s”. "
                "Unplug the tokens that are not yours, then try again."
            )
            % {"label": token_label}
        ) from exc
    except p11_exc.PKCS11Error as exc:
        raise TokenNotFound(
            _("The signing token “%(label)s” cannot be read: %(error)s")
            % {"label": token_label, "error": type(exc).__name__}
        ) from exc


def _open_session(token: Any, pin: str) -> Any:
    if not pin:
        raise WrongTokenPin(_("Enter the PIN of your signing token."))
    try:
        return token.open(user_pin=pin)
    except (p11_exc.PinIncorrect, p11_exc.PinInvalid, p11_exc.PinLenRange) as exc:
        raise WrongTokenPin(
            _(
                "The token PIN is wrong. Tokens lock themselves after a few wrong "
                "attempts: check the PIN before trying again."
            )
        ) from exc
    except (p11_exc.PinLocked, p11_exc.PinExpired) as exc:
        raise TokenLocked(
            _(
                "The signing token is locked (or its PIN has expired). "
                "Ask the certificate provider to unlock it."
            )
        ) from exc
    except p11_exc.PKCS11Error as exc:
        raise TokenError(
            _("The signing token refused to open a session: %(error)s")
            % {"error": type(exc).__name__}
        ) from exc


class TokenSigner(PKCS11Signer):
    """pyHanko's `PKCS11Signer` that owns its session: use it as a context manager."""

    def close(self) -> None:
        session = self.pkcs11_session
        if session is None:
            return
        self.pkcs11_session = None
        try:
            session.close()
        except p11_exc.PKCS11Error:  # token unplugged meanwhile: nothing left to close
            logger.warning("PKCS#11 session could not be closed cleanly", exc_info=True)

    def __enter__(self) -> TokenSigner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def pkcs11_signer(
    module_path: str,
    token_label: str,
    pin: str,
    key_label: str,
    cert_label: str | None = None,
) -> TokenSigner:
    """Open the token, log in with `pin` and return a signer for the key `key_label`.

    The certificate is looked up by `cert_label` (default: `key_label`); all other
    certificates on the token are loaded too, so that the chain can be embedded.
    The returned signer holds an open session: close it (or use ``with``).

    Raises `Pkcs11ModuleMissing`, `TokenNotFound`, `WrongTokenPin`, `TokenLocked`,
    `TokenKeyNotFound` or `TokenError`.
    """
    lib = _load_module(module_path)
    token = _find_token(lib, token_label)
    session = _open_session(token, pin)
    signer = TokenSigner(
        session,
        cert_label=cert_label or key_label,
        key_label=key_label,
        other_certs_to_pull=None,  # every certificate on the token: the CA chain
    )
    try:
        # Load the key and certificates now, so that a missing key is reported here
        # and not halfway through writing the PDF.
        signer._load_objects()
        signer.use_raw_mechanism = _needs_raw_ecdsa(token, signer)
    except p11_exc.PKCS11Error as exc:
        signer.close()
        raise TokenKeyNotFound(
            _(
                "The signing token “%(token)s” has no usable signing key “%(key)s” with "
                "its certificate. Ask the administrator to check the token."
            )
            % {"token": token_label, "key": key_label}
        ) from exc
    except BaseException:
        signer.close()
        raise
    return signer


def _needs_raw_ecdsa(token: Any, signer: PKCS11Signer) -> bool:
    """EC keys on tokens that only offer plain CKM_ECDSA (SoftHSM2, many cards): hash here."""
    if signer.signing_cert.public_key.algorithm != "ec":
        return False
    mechanisms = token.slot.get_mechanisms()
    return Mechanism.ECDSA_SHA256 not in mechanisms and Mechanism.ECDSA in mechanisms


def _setting(name: str) -> str:
    """settings.NAME, else the environment variable BENHAN_NAME (until settings.py has it)."""
    return getattr(settings, name, None) or os.environ.get(f"BENHAN_{name}", "")


def pkcs11_signer_from_settings(
    pin: str,
    *,
    token_label: str | None = None,
    key_label: str | None = None,
    cert_label: str | None = None,
) -> TokenSigner:
    """`pkcs11_signer()` with the module and labels from settings (arguments win)."""
    return pkcs11_signer(
        _setting("PKCS11_MODULE"),
        token_label or _setting("PKCS11_TOKEN_LABEL"),
        pin,
        key_label or _setting("PKCS11_KEY_LABEL"),
        cert_label or _setting("PKCS11_CERT_LABEL") or None,
    )


def token_objects(module_path: str, token_label: str, pin: str) -> list[tuple[str, str]]:
    """(kind, label) of the keys and certificates on a token: for setup and diagnostics."""
    lib = _load_module(module_path)
    session = _open_session(_find_token(lib, token_label), pin)
    try:
        found = []
        for kind, cls in (
            ("key", ObjectClass.PRIVATE_KEY),
            ("certificate", ObjectClass.CERTIFICATE),
        ):
            for obj in session.get_objects({Attribute.CLASS: cls}):
                found.append((kind, obj[Attribute.LABEL]))
        return found
    finally:
        session.close()
