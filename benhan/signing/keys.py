"""Private keys at rest: generation and AES-GCM encryption under a PIN or the CA passphrase.

Blob layout (version 1):

    b"BK1" | kind (1 byte: 1 = PIN, 2 = CA passphrase) | scrypt log2 N (1 byte)
    | salt (16) | nonce (12) | AES-256-GCM(PKCS#8 DER of the key)

The associated data is the certificate serial, so a blob cannot be moved to another
row. The key-encryption key comes from scrypt (memory-hard; r=8, p=1, N=2^cost):

* PIN blobs: scrypt(PIN ‖ pepper). The pepper is derived from the CA passphrase, so a
  copy of the database alone is not enough to guess the 6–12 digit PINs offline.
* CA blobs (CA, seal and TSA keys): scrypt(CA passphrase). The CA passphrase is
  settings.CA_PASSPHRASE, or derived from SECRET_KEY with HKDF when not set.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from functools import lru_cache

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from django.conf import settings

MAGIC = b"BK1"
KIND_PIN = 1
KIND_CA = 2
HEADER = len(MAGIC) + 2 + 16 + 12

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class DecryptionFailed(Exception):  # noqa: N818 - public API name
    """Wrong PIN or passphrase, or a damaged blob."""


def generate_key(key_type: str | None = None) -> PrivateKey:
    key_type = key_type or settings.SIGNING_KEY_TYPE
    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa-3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise ValueError(f"unknown SIGNING_KEY_TYPE {key_type!r} (ecdsa-p256 or rsa-3072)")


def ca_passphrase() -> bytes:
    configured = settings.CA_PASSPHRASE
    if configured:
        return configured.encode()
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"benhan ca passphrase"
    ).derive(settings.SECRET_KEY.encode())


def _pepper() -> bytes:
    return hmac.new(ca_passphrase(), b"benhan signing pin pepper", hashlib.sha256).digest()


def _scrypt(secret: bytes, salt: bytes, cost: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=2**cost, r=8, p=1).derive(secret)


# Keys derived from the CA passphrase, per salt: the passphrase does not change while
# the process runs, and seal/TSA keys are loaded often.
_ca_kek_lock = threading.Lock()


@lru_cache(maxsize=256)
def _ca_kek(passphrase: bytes, salt: bytes, cost: int) -> bytes:
    return _scrypt(passphrase, salt, cost)


def _kek(kind: int, secret: str | None, salt: bytes, cost: int) -> bytes:
    if kind == KIND_PIN:
        return _scrypt((secret or "").encode() + _pepper(), salt, cost)
    with _ca_kek_lock:
        return _ca_kek(ca_passphrase(), salt, cost)


def encrypt_key(key: PrivateKey, aad: str, pin: str | None = None) -> bytes:
    """Encrypt under `pin` (a staff key) or, with pin=None, the CA passphrase."""
    kind = KIND_CA if pin is None else KIND_PIN
    cost = settings.SIGNING_PIN_KDF_COST
    salt, nonce = os.urandom(16), os.urandom(12)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    sealed = AESGCM(_kek(kind, pin, salt, cost)).encrypt(nonce, der, aad.encode())
    return MAGIC + bytes([kind, cost]) + salt + nonce + sealed


def decrypt_key(blob: bytes, aad: str, pin: str | None = None) -> PrivateKey:
    blob = bytes(blob)
    if len(blob) < HEADER or not blob.startswith(MAGIC):
        raise DecryptionFailed("not an encrypted key")
    kind, cost = blob[3], blob[4]
    if (kind == KIND_PIN) != (pin is not None):
        raise DecryptionFailed("key is not encrypted that way")
    salt, nonce, sealed = blob[5:21], blob[21:33], blob[33:]
    try:
        der = AESGCM(_kek(kind, pin, salt, cost)).decrypt(nonce, sealed, aad.encode())
    except Exception as exc:  # cryptography raises InvalidTag
        raise DecryptionFailed("wrong PIN or passphrase") from exc
    return serialization.load_der_private_key(der, password=None)
