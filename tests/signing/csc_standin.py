"""A stand-in remote signing service speaking the Cloud Signature Consortium API.

Just enough of CSC API v1.0.4 (and the v2 field names) for the tests: one user, one
credential, an OTP that is always "123456". Stdlib HTTP server on 127.0.0.1 with an
ephemeral port, run in a thread::

    with CscStandin() as service:
        service.url           # "http://127.0.0.1:PORT" (base URL, before /csc/v1/...)
        service.signed        # base64 hashes it signed, in order
        service.root_cert     # trust anchor (cryptography Certificate)

Also home of `throwaway_pki()`, the root + leaf the signer tests share.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

OTP = "123456"
USERNAME = "bacsi.an"
PASSWORD = "mat-khau-dich-vu"
CREDENTIAL_ID = "cred-bacsi-an-1"

_HASHES = {
    "2.16.840.1.101.3.4.2.1": hashes.SHA256(),
    "2.16.840.1.101.3.4.2.2": hashes.SHA384(),
    "2.16.840.1.101.3.4.2.3": hashes.SHA512(),
}
_EC_SIGN_ALGOS = {  # ecdsa-with-SHA256/384/512
    "1.2.840.10045.4.3.2",
    "1.2.840.10045.4.3.3",
    "1.2.840.10045.4.3.4",
}
_RSA_SIGN_ALGOS = {  # rsaEncryption, sha256/384/512WithRSAEncryption
    "1.2.840.113549.1.1.1",
    "1.2.840.113549.1.1.11",
    "1.2.840.113549.1.1.12",
    "1.2.840.113549.1.1.13",
}
_SIGN_ALGO_HASH = {
    "1.2.840.10045.4.3.2": "2.16.840.1.101.3.4.2.1",
    "1.2.840.10045.4.3.3": "2.16.840.1.101.3.4.2.2",
    "1.2.840.10045.4.3.4": "2.16.840.1.101.3.4.2.3",
    "1.2.840.113549.1.1.11": "2.16.840.1.101.3.4.2.1",
    "1.2.840.113549.1.1.12": "2.16.840.1.101.3.4.2.2",
    "1.2.840.113549.1.1.13": "2.16.840.1.101.3.4.2.3",
}


# --- a throwaway PKI ---------------------------------------------------------------------


@dataclass
class Pki:
    root_key: Any
    root_cert: x509.Certificate
    key: Any  # the signer's private key
    cert: x509.Certificate

    def key_pkcs8_der(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def key_der(self) -> bytes:
        """Traditional DER: PKCS#1 for RSA, SEC1 (RFC 5915) for EC (python-pkcs11's input)."""
        return self.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bệnh Án test"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def throwaway_pki(
    signer_name: str = "Nguyễn Văn An", *, key_type: str = "ec", root_name: str = "Test Root"
) -> Pki:
    """A self-signed root and one signing certificate it issued (no CRL/OCSP URLs)."""
    now = datetime.now(UTC) - timedelta(minutes=5)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(root_name))
        .issuer_name(_name(root_name))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    if key_type == "rsa":
        key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(signer_name))
        .issuer_name(root_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=10))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )
    return Pki(root_key, root_cert, key, cert)


# --- the service -------------------------------------------------------------------------


class CscError(Exception):
    def __init__(self, status: int, error: str, description: str):
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


@dataclass
class _Sad:
    credential_id: str
    remaining: int
    expires: float
    hashes: frozenset[str] | None  # pinned hashes (SCAL 2)


class CscStandin:
    """The service. `scal=2` pins the SAD to the hashes given at authorisation."""

    def __init__(
        self,
        *,
        key_type: str = "ec",
        scal: int = 1,
        require_login: bool = False,
        signer_name: str = "Nguyễn Văn An (CSC)",
    ):
        self.pki = throwaway_pki(signer_name, key_type=key_type, root_name="CSC Stand-in Root")
        self.scal = scal
        self.require_login = require_login
        self.signed: list[str] = []  # base64 hashes signed, in order
        self.requests: list[tuple[str, dict]] = []  # (endpoint, body) received
        self._tokens: set[str] = set()
        self._sads: dict[str, _Sad] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    @property
    def root_cert(self) -> x509.Certificate:
        return self.pki.root_cert

    @property
    def cert(self) -> x509.Certificate:
        return self.pki.cert

    @property
    def url(self) -> str:
        assert self._server is not None, "service not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> CscStandin:
        standin = self

        class Handler(_Handler):
            service = standin

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="csc-standin",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> CscStandin:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # endpoints: (api version, body, headers) -> response JSON

    def dispatch(self, version: str, endpoint: str, body: dict, headers: Any) -> dict:
        with self._lock:
            self.requests.append((endpoint, body))
        if endpoint == "info":
            return self._info(version)
        if endpoint == "auth/login":
            return self._login(headers)
        self._check_token(headers)
        handlers = {
            "credentials/list": self._credentials_list,
            "credentials/info": self._credentials_info,
            "credentials/authorize": self._authorize,
            "signatures/signHash": self._sign_hash,
        }
        if endpoint not in handlers:
            raise CscError(404, "invalid_request", f"Unknown endpoint {endpoint}")
        return handlers[endpoint](version, body)

    def _info(self, version: str) -> dict:
        return {
            "specs": "2.0.0.2" if version == "v2" else "1.0.4.0",
            "name": "Bệnh Án CSC stand-in",
            "logo": "",
            "region": "VN",
            "lang": "en-US",
            "description": "Test double of a remote signing service",
            "authType": ["basic"] if self.require_login else ["external"],
            "methods": [
                "auth/login",
                "credentials/list",
                "credentials/info",
                "credentials/authorize",
                "signatures/signHash",
            ],
        }

    def _login(self, headers: Any) -> dict:
        expected = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
        if headers.get("Authorization", "") != f"Basic {expected}":
            raise CscError(401, "invalid_request", "Invalid username or password")
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._tokens.add(token)
        return {"access_token": token, "expires_in": 3600}

    def _check_token(self, headers: Any) -> None:
        if not self.require_login:
            return
        auth = headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self._tokens:
            raise CscError(401, "invalid_token", "The access token is not valid")

    def _credential(self, body: dict) -> None:
        if body.get("credentialID") != CREDENTIAL_ID:
            raise CscError(400, "invalid_request", "Invalid parameter credentialID")

    def _credentials_list(self, version: str, body: dict) -> dict:
        return {"credentialIDs": [CREDENTIAL_ID]}

    def _credentials_info(self, version: str, body: dict) -> dict:
        self._credential(body)
        certs = [self.pki.cert]
        if body.get("certificates", "single") == "chain":
            certs.append(self.pki.root_cert)
        b64 = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in certs]
        if isinstance(self.pki.key, ec.EllipticCurvePrivateKey):
            key = {
                "status": "enabled",
                "algo": sorted(_EC_SIGN_ALGOS),
                "len": 256,
                "curve": "1.2.840.10045.3.1.7",
            }
        else:
            key = {"status": "enabled", "algo": sorted(_RSA_SIGN_ALGOS), "len": 2048}
        return {
            "description": "Chữ ký số của bác sĩ An",
            "key": key,
            "cert": {"status": "valid", "certificates": b64},
            "authMode": "explicit",
            "SCAL": str(self.scal),
            "PIN": {"presence": "false"},
            "OTP": {
                "presence": "true",
                "type": "offline",
                "format": "N",
                "label": "OTP",
                "description": "Mã OTP trên điện thoại",
            },
            "multisign": 5,
            "lang": "en-US",
        }

    def _authorize(self, version: str, body: dict) -> dict:
        self._credential(body)
        if body.get("OTP") != OTP:
            raise CscError(400, "invalid_otp", "The OTP is invalid")
        hash_list = body.get("hashes" if version == "v2" else "hash")
        num = int(body.get("numSignatures", 1))
        if self.scal == 2:
            if not hash_list:
                raise CscError(400, "invalid_request", "Missing (or invalid type) hash")
            num = len(hash_list)
        sad = secrets.token_urlsafe(24)
        with self._lock:
            self._sads[sad] = _Sad(
                CREDENTIAL_ID,
                remaining=num,
                expires=time.monotonic() + 300,
                hashes=frozenset(hash_list) if self.scal == 2 else None,
            )
        return {"SAD": sad, "expiresIn": 300}

    def _sign_hash(self, version: str, body: dict) -> dict:
        self._credential(body)
        if version == "v2":
            hash_list, hash_oid = body.get("hashes"), body.get("hashAlgorithmOID")
        else:
            hash_list, hash_oid = body.get("hash"), body.get("hashAlgo")
        if not isinstance(hash_list, list) or not hash_list:
            raise CscError(400, "invalid_request", "Missing (or invalid type) hash")
        sign_algo = body.get("signAlgo", "")
        hash_oid = hash_oid or _SIGN_ALGO_HASH.get(sign_algo)
        if hash_oid not in _HASHES:
            raise CscError(400, "invalid_request", "Invalid parameter hashAlgo")
        is_ec = isinstance(self.pki.key, ec.EllipticCurvePrivateKey)
        if sign_algo not in (_EC_SIGN_ALGOS if is_ec else _RSA_SIGN_ALGOS):
            raise CscError(400, "invalid_request", "Invalid parameter signAlgo")
        with self._lock:
            sad = self._sads.get(body.get("SAD", ""))
            if sad is None or sad.expires < time.monotonic():
                raise CscError(400, "invalid_request", "Invalid parameter SAD")
            if sad.remaining < len(hash_list):
                raise CscError(400, "invalid_request", "Invalid parameter SAD")
            if sad.hashes is not None and not set(hash_list) <= sad.hashes:
                raise CscError(400, "invalid_request", "The hash does not match the SAD")
            sad.remaining -= len(hash_list)
            if sad.remaining == 0:
                del self._sads[body["SAD"]]
        algorithm = _HASHES[hash_oid]
        signatures = []
        for b64 in hash_list:
            digest = base64.b64decode(b64)
            if len(digest) != algorithm.digest_size:
                raise CscError(400, "invalid_request", "Invalid hash length")
            if is_ec:
                sig = self.pki.key.sign(digest, ec.ECDSA(Prehashed(algorithm)))
            else:
                sig = self.pki.key.sign(digest, padding.PKCS1v15(), Prehashed(algorithm))
            signatures.append(base64.b64encode(sig).decode())
        with self._lock:
            self.signed.extend(hash_list)
        return {"signatures": signatures}


class _Handler(BaseHTTPRequestHandler):
    service: CscStandin
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        parts = path.strip("/").split("/", 2)
        try:
            if len(parts) != 3 or parts[0] != "csc" or parts[1] not in ("v1", "v2"):
                raise CscError(404, "invalid_request", "Not found")
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                raise CscError(400, "invalid_request", "Malformed JSON") from None
            if not isinstance(body, dict):
                raise CscError(400, "invalid_request", "Malformed JSON")
            result = self.service.dispatch(parts[1], parts[2], body, self.headers)
            self._reply(HTTPStatus.OK, result)
        except CscError as exc:
            self._reply(exc.status, {"error": exc.error, "error_description": exc.description})

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


# --- helpers shared by the signer tests ------------------------------------------------


def blank_pdf() -> bytes:
    """A one-page A4 PDF with an empty content stream."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter

    writer = PdfFileWriter()
    contents = writer.add_object(generic.StreamObject(stream_data=b""))
    writer.insert_page(PageObject(contents=contents, media_box=(0, 0, 595, 842)))
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def sign_blank_pdf(signer: Any, field_name: str = "Signature1") -> bytes:
    """Sign `blank_pdf()` with pyHanko's high-level API (as the signing core does)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers

    out = BytesIO()
    signers.sign_pdf(
        IncrementalPdfFileWriter(BytesIO(blank_pdf())),
        signers.PdfSignatureMetadata(field_name=field_name),
        signer=signer,
        output=out,
    )
    return out.getvalue()


def validate_single_signature(pdf: bytes, root: x509.Certificate) -> Any:
    """Validate the one signature in `pdf`, trusting only `root`; return pyHanko's status."""
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    trust = asn1_x509.Certificate.load(root.public_bytes(serialization.Encoding.DER))
    context = ValidationContext(trust_roots=[trust], allow_fetching=False)
    reader = PdfFileReader(BytesIO(pdf))
    (embedded,) = reader.embedded_signatures
    return validate_pdf_signature(embedded, signer_validation_context=context)


def cert_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)
