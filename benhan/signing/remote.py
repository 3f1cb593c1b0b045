"""Signing with a key held by a remote signing service (Cloud Signature Consortium API).

The service keeps the staff member's key; we send it only the hash of what is signed,
after the staff member approves with a one-time code (OTP) from the provider's app or
SMS. The flow (CSC API v1.0.4, or v2 with its renamed fields):

1. ``credentials/info``: the signing certificate and its chain, supported algorithms,
   and whether the approval must be tied to the exact hash (SCAL 2);
2. ``credentials/authorize`` with the OTP (and PIN, if the service wants one): the
   service answers with Signature Activation Data (SAD) once the user has approved;
3. ``signatures/signHash`` with the SAD and the hash: the raw signature, which pyHanko
   puts in the PDF's CMS.

For SCAL 1 services the OTP is checked *before* the PDF is touched; for SCAL 2 the
authorisation has to name the hash, so it happens during signing (still one OTP per
signature). `remote_signer()` returns pyHanko's `CSCSigner`, adapted so it works with
pyHanko's synchronous API (each signing call opens its own HTTP session in pyHanko's
event loop).

Errors are `RemoteSigningRefused` (the service said no: wrong OTP, unknown credential,
bad token) or `RemoteServiceUnavailable` (cannot reach it, timeout, 5xx); both have
messages meant for staff, with the technical cause chained.

Settings (see docs/signers.md): ``CSC_URL``, ``CSC_API_VERSION`` (``v1``/``v2``),
``CSC_TOKEN`` (OAuth2 bearer token, if the provider gives the facility one) and
``CSC_TIMEOUT`` (seconds), from the environment variables ``BENHAN_CSC_*``.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import os
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from asn1crypto import algos
from django.conf import settings
from django.utils.translation import gettext as _
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers.csc_signer import (
    CSCAuthorizationInfo,
    CSCAuthorizationManager,
    CSCCredentialInfo,
    CSCServiceSessionInfo,
    CSCSigner,
    # pyHanko's parser of a credentials/info answer; we do the HTTP ourselves to keep the
    # service's error codes (fetch_certs_in_csc_credential drops them). pyHanko is pinned.
    _process_certificate_info_response,
)

from benhan.signing.pki import SigningError as BenhanSigningError

__all__ = [
    "RemoteServiceUnavailable",
    "RemoteSigner",
    "RemoteSigningError",
    "RemoteSigningRefused",
    "aremote_signer",
    "csc_login",
    "list_credentials",
    "remote_signer",
    "remote_signer_from_settings",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30


class RemoteSigningError(BenhanSigningError):
    """The remote signing service did not sign. The message is meant for staff."""

    def __init__(self, message: str, *, csc_error: str | None = None):
        super().__init__(message)
        self.csc_error = csc_error  # the service's "error" code, for the log


class RemoteSigningRefused(RemoteSigningError):  # noqa: N818 - outcome names, like pki.WrongPin
    """The service answered and refused (wrong OTP/PIN, unknown credential, bad token)."""


class RemoteServiceUnavailable(RemoteSigningError):  # noqa: N818 - outcome names, like pki.WrongPin
    """The service could not be reached, timed out or failed (5xx, nonsense answer)."""


# --- HTTP ---


def _check_url(service_url: str) -> str:
    """https only, except on the loopback (tests, a local gateway)."""
    parts = urlsplit(service_url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise RemoteServiceUnavailable(
            _("The remote signing service must be reached over HTTPS (%(url)s).")
            % {"url": service_url}
        )
    return service_url.rstrip("/")


def _unavailable(exc: BaseException | None = None) -> RemoteServiceUnavailable:
    return RemoteServiceUnavailable(
        _(
            "The remote signing service cannot be reached right now. Nothing was signed; "
            "try again in a few minutes, or sign with another method."
        )
    )


def _refused(csc_error: str | None, status: int) -> RemoteSigningRefused:
    if csc_error in ("invalid_otp", "invalid_pin") or csc_error == "access_denied":
        message = _(
            "The signing service did not accept the code. Nothing was signed; check the "
            "one-time code (it expires quickly) and try again."
        )
    elif status in (401, 403) or csc_error == "invalid_token":
        message = _(
            "The signing service did not accept the facility's access token. "
            "Ask the administrator to renew it."
        )
    else:
        message = _(
            "The signing service refused to sign (%(error)s). Nothing was signed; "
            "ask the administrator to check your signing account."
        ) % {"error": csc_error or status}
    return RemoteSigningRefused(message, csc_error=csc_error)


async def _post(
    http: aiohttp.ClientSession,
    url: str,
    body: dict,
    *,
    headers: dict[str, str],
    timeout: float,
) -> dict:
    """POST JSON to the service; CSC errors and network failures become our exceptions."""
    try:
        async with http.post(
            url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            try:
                payload = await response.json(content_type=None)
            except ValueError:
                payload = None
            if response.status >= 500 or (response.status >= 400 and payload is None):
                logger.warning("CSC %s answered HTTP %s", url, response.status)
                raise _unavailable()
            if response.status >= 400:
                error = payload.get("error") if isinstance(payload, dict) else None
                logger.info(
                    "CSC %s refused: HTTP %s %s %s",
                    url,
                    response.status,
                    error,
                    payload.get("error_description") if isinstance(payload, dict) else "",
                )
                raise _refused(error, response.status)
            if not isinstance(payload, dict):
                raise _unavailable()
            return payload
    except (aiohttp.ClientError, TimeoutError) as exc:
        logger.warning("CSC %s unreachable: %r", url, exc)
        raise _unavailable(exc) from exc


def _run(coro: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise RuntimeError("use the async variant (aremote_signer) inside an event loop")


# --- authorisation ---


class _OtpAuthorizationManager(CSCAuthorizationManager):
    """Calls ``credentials/authorize`` with the user's OTP/PIN, once, for the given hashes."""

    def __init__(
        self,
        session_info: CSCServiceSessionInfo,
        credential_info: CSCCredentialInfo,
        *,
        otp: str | None,
        pin: str | None,
        description: str | None,
        timeout: float,
    ):
        super().__init__(session_info, credential_info)
        self._otp = otp
        self._pin = pin
        self._description = description
        self._timeout = timeout
        self._used = False
        self.prefetched: CSCAuthorizationInfo | None = None  # SCAL 1: approved up front
        self.http: aiohttp.ClientSession | None = None  # set by the signer per call

    def format_csc_auth_request(self, *args: Any, **kwargs: Any) -> dict:
        body = super().format_csc_auth_request(*args, **kwargs)
        if self.csc_session_info.api_ver == "v2" and "hash" in body:
            body["hashes"] = body.pop("hash")
            body["hashAlgorithmOID"] = algos.DigestAlgorithmId("sha256").dotted
        return body

    async def authorize(self, http: aiohttp.ClientSession, hashes: list[str] | None):
        if self._used:
            raise RemoteSigningRefused(
                _("The one-time code has already been used. Enter a new code.")
            )
        self._used = True
        body = self.format_csc_auth_request(
            num_signatures=1,
            pin=self._pin,
            otp=self._otp,
            hash_b64s=hashes,
            description=self._description,
        )
        payload = await _post(
            http,
            self.csc_session_info.endpoint_url("credentials/authorize"),
            body,
            headers=self.auth_headers,
            timeout=self._timeout,
        )
        try:
            return self.parse_csc_auth_response(payload)
        except SigningError as exc:
            raise _unavailable(exc) from exc

    async def authorize_signature(self, hash_b64s: list[str]) -> CSCAuthorizationInfo:
        if self.prefetched is not None:
            sad, self.prefetched = self.prefetched, None
            return sad
        assert self.http is not None
        return await self.authorize(self.http, hash_b64s)


# --- the signer ---


class RemoteSigner(CSCSigner):
    """pyHanko's `CSCSigner`, usable from synchronous code, with our exceptions.

    Each real signature opens its own aiohttp session inside the event loop pyHanko
    is running, so the signer can be used with `pyhanko.sign.signers.sign_pdf` (which
    starts a fresh loop with `asyncio.run`).
    """

    auth_manager: _OtpAuthorizationManager

    def __init__(self, auth_manager: _OtpAuthorizationManager, *, timeout: float, **kwargs):
        super().__init__(
            session=None,  # type: ignore[arg-type]  # opened per signature, see below
            auth_manager=auth_manager,
            sign_timeout=int(timeout),
            **kwargs,
        )

    async def format_csc_signing_req(self, tbs_hashes: list[str], digest_algorithm: str) -> dict:
        body = await super().format_csc_signing_req(tbs_hashes, digest_algorithm)
        if self.auth_manager.csc_session_info.api_ver == "v2":
            body["hashes"] = body.pop("hash")
            body["hashAlgorithmOID"] = body.pop("hashAlgo")
        return body

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run=False) -> bytes:
        if dry_run:
            return await super().async_sign_raw(data, digest_algorithm, dry_run=True)
        async with aiohttp.ClientSession() as http:
            self.session = self.auth_manager.http = http
            try:
                return await super().async_sign_raw(data, digest_algorithm)
            finally:
                self.session = self.auth_manager.http = None  # type: ignore[assignment]

    async def _do_commit(self, batch: Any) -> None:
        # pyHanko logs and swallows SigningError from a commit, then raises a generic
        # "No signing results available": translate first, so staff see the reason.
        try:
            await super()._do_commit(batch)
        except SigningError as exc:
            cause = exc.__cause__
            if isinstance(cause, aiohttp.ClientResponseError) and 400 <= cause.status < 500:
                raise _refused(None, cause.status) from exc
            raise _unavailable(exc) from exc


async def _credential_info(
    http: aiohttp.ClientSession, session_info: CSCServiceSessionInfo, timeout: float
) -> CSCCredentialInfo:
    payload = await _post(
        http,
        session_info.endpoint_url("credentials/info"),
        {"credentialID": session_info.credential_id, "certificates": "chain", "certInfo": False},
        headers=session_info.auth_headers,
        timeout=timeout,
    )
    try:
        return _process_certificate_info_response(payload)
    except (SigningError, IndexError) as exc:
        logger.warning("CSC credentials/info answer not understood: %r", exc)
        raise _unavailable(exc) from exc


async def aremote_signer(
    service_url: str,
    credential_id: str,
    otp: str | None,
    *,
    pin: str | None = None,
    oauth_token: str | None = None,
    api_version: str = "v1",
    timeout: float = DEFAULT_TIMEOUT,
    description: str | None = None,
) -> RemoteSigner:
    """Async `remote_signer()`; for use inside a running event loop."""
    if api_version not in ("v1", "v2"):
        raise ValueError(f"CSC API version must be v1 or v2, not {api_version!r}")
    session_info = CSCServiceSessionInfo(
        service_url=_check_url(service_url),
        credential_id=credential_id,
        oauth_token=oauth_token,
        api_ver=api_version,
    )
    async with aiohttp.ClientSession() as http:
        credential_info = await _credential_info(http, session_info, timeout)
        manager = _OtpAuthorizationManager(
            session_info,
            credential_info,
            otp=otp,
            pin=pin,
            description=description,
            timeout=timeout,
        )
        if not credential_info.hash_pinning_required:
            # SCAL 1: approve now, before any work on the PDF.
            manager.prefetched = await manager.authorize(http, None)
    return RemoteSigner(manager, timeout=timeout)


def remote_signer(
    service_url: str,
    credential_id: str,
    otp: str | None,
    *,
    pin: str | None = None,
    oauth_token: str | None = None,
    api_version: str = "v1",
    timeout: float = DEFAULT_TIMEOUT,
    description: str | None = None,
) -> RemoteSigner:
    """A pyHanko `Signer` for one signature by the CSC credential `credential_id`.

    `otp` (and `pin`, if the service asks for one) come from the staff member at the
    moment of signing: the service's approval. Good for exactly one signature.
    Raises `RemoteSigningRefused` or `RemoteServiceUnavailable`.
    """
    return _run(
        aremote_signer(
            service_url,
            credential_id,
            otp,
            pin=pin,
            oauth_token=oauth_token,
            api_version=api_version,
            timeout=timeout,
            description=description,
        )
    )


def _setting(name: str) -> Any:
    """settings.NAME, else the environment variable BENHAN_NAME (until settings.py has it)."""
    return getattr(settings, name, None) or os.environ.get(f"BENHAN_{name}", "")


def remote_signer_from_settings(
    credential_id: str,
    otp: str | None,
    *,
    pin: str | None = None,
    oauth_token: str | None = None,
    description: str | None = None,
) -> RemoteSigner:
    """`remote_signer()` with the service URL, API version, token and timeout from settings."""
    return remote_signer(
        _setting("CSC_URL"),
        credential_id,
        otp,
        pin=pin,
        oauth_token=oauth_token or _setting("CSC_TOKEN") or None,
        api_version=_setting("CSC_API_VERSION") or "v1",
        timeout=float(_setting("CSC_TIMEOUT") or DEFAULT_TIMEOUT),
        description=description,
    )


# --- setup helpers ---


def csc_login(
    service_url: str,
    username: str,
    password: str,
    *,
    api_version: str = "v1",
    timeout: float = DEFAULT_TIMEOUT,
) -> str:
    """``auth/login`` with HTTP Basic: the access token for the other calls."""
    url = f"{_check_url(service_url)}/csc/{api_version}/auth/login"
    basic = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")

    async def go() -> dict:
        async with aiohttp.ClientSession() as http:
            return await _post(
                http, url, {}, headers={"Authorization": f"Basic {basic}"}, timeout=timeout
            )

    payload = _run(go())
    token = payload.get("access_token")
    if not isinstance(token, str):
        raise _unavailable()
    return token


def list_credentials(
    service_url: str,
    *,
    oauth_token: str | None = None,
    user_id: str | None = None,
    api_version: str = "v1",
    timeout: float = DEFAULT_TIMEOUT,
) -> list[str]:
    """``credentials/list``: the credential IDs of the authenticated user (for setup)."""
    url = f"{_check_url(service_url)}/csc/{api_version}/credentials/list"
    headers = {"Authorization": f"Bearer {oauth_token}"} if oauth_token else {}
    body = {"userID": user_id} if user_id else {}

    async def go() -> dict:
        async with aiohttp.ClientSession() as http:
            return await _post(http, url, body, headers=headers, timeout=timeout)

    ids = _run(go()).get("credentialIDs")
    if not isinstance(ids, list):
        raise _unavailable()
    return [str(i) for i in ids]
