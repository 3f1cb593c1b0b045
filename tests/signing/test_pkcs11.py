"""The PKCS#11 signer against a fresh SoftHSM2 token (Debian's `softhsm2` package)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from benhan.signing.pkcs11 import (
    Pkcs11ModuleMissing,
    TokenKeyNotFound,
    TokenNotFound,
    WrongTokenPin,
    pkcs11_signer,
    pkcs11_signer_from_settings,
    token_objects,
)

from .csc_standin import (
    Pki,
    blank_pdf,
    cert_der,
    sign_blank_pdf,
    throwaway_pki,
    validate_single_signature,
)

TOKEN_LABEL = "benhan-test"
SO_PIN = "12345678"
PIN = "123456"

_MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)


def _softhsm_module() -> str | None:
    return next((path for path in _MODULE_CANDIDATES if os.path.isfile(path)), None)


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory):
    """A fresh token holding an RSA and an EC signing key, their certificates and the root.

    SoftHSM2 reads SOFTHSM2_CONF when the module is first initialised, and python-pkcs11
    keeps the module loaded for the whole process, so the variable is set before any
    test loads it (and left pointing at this token store for the session).
    """
    module = _softhsm_module()
    softhsm2_util = shutil.which("softhsm2-util")
    if softhsm2_util is None or module is None:
        pytest.skip("SoftHSM2 is not installed (apt install softhsm2)")

    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(  # noqa: S603 - fixed arguments; softhsm2-util found on PATH above
        [
            softhsm2_util,
            "--init-token",
            "--free",
            "--label",
            TOKEN_LABEL,
            "--so-pin",
            SO_PIN,
            "--pin",
            PIN,
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
    )
    rsa = throwaway_pki("Trần Thị Bình (token RSA)", key_type="rsa", root_name="Token Root")
    ec = throwaway_pki("Lê Văn Cường (token EC)", key_type="ec", root_name="Token Root EC")
    _import(module, rsa, "rsa-sign", b"\x01", root_label="root-rsa")
    _import(module, ec, "ec-sign", b"\x02", root_label="root-ec")
    yield {"module": module, "rsa": rsa, "ec": ec, "conf": Path(conf)}
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


def _import(module: str, pki: Pki, label: str, key_id: bytes, *, root_label: str) -> None:
    """Write the private key and both certificates onto the token with python-pkcs11."""
    import pkcs11
    from pkcs11 import Attribute
    from pkcs11.util.ec import decode_ec_private_key
    from pkcs11.util.rsa import decode_rsa_private_key
    from pkcs11.util.x509 import decode_x509_certificate

    token = pkcs11.lib(module).get_token(token_label=TOKEN_LABEL)
    decode = decode_rsa_private_key if label.startswith("rsa") else decode_ec_private_key
    with token.open(rw=True, user_pin=PIN) as session:
        key = decode(pki.key_der())
        key.update(
            {
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.SIGN: True,
                Attribute.LABEL: label,
                Attribute.ID: key_id,
            }
        )
        session.create_object(key)
        for cert, cert_label, cert_id in (
            (pki.cert, label, key_id),
            (pki.root_cert, root_label, key_id + b"\xff"),
        ):
            attrs = decode_x509_certificate(cert_der(cert))
            attrs.update(
                {Attribute.TOKEN: True, Attribute.LABEL: cert_label, Attribute.ID: cert_id}
            )
            session.create_object(attrs)


def _assert_valid(pdf: bytes, pki: Pki) -> None:
    status = validate_single_signature(pdf, pki.root_cert)
    assert status.intact
    assert status.valid
    assert status.trusted
    assert status.bottom_line
    assert status.signing_cert.dump() == cert_der(pki.cert)


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_signs_with_the_key_on_the_token(softhsm, kind):
    with pkcs11_signer(softhsm["module"], TOKEN_LABEL, PIN, key_label=f"{kind}-sign") as signer:
        pdf = sign_blank_pdf(signer)

    _assert_valid(pdf, softhsm[kind])


def test_the_session_is_closed_after_signing(softhsm):
    with pkcs11_signer(softhsm["module"], TOKEN_LABEL, PIN, key_label="rsa-sign") as signer:
        sign_blank_pdf(signer)
    assert signer.pkcs11_session is None
    signer.close()  # twice is harmless


def test_signing_twice_in_one_session(softhsm):
    with pkcs11_signer(softhsm["module"], TOKEN_LABEL, PIN, key_label="ec-sign") as signer:
        first, second = sign_blank_pdf(signer), sign_blank_pdf(signer, "Signature2")
    _assert_valid(first, softhsm["ec"])
    _assert_valid(second, softhsm["ec"])


def test_wrong_pin(softhsm):
    with pytest.raises(WrongTokenPin, match="PIN is wrong"):
        pkcs11_signer(softhsm["module"], TOKEN_LABEL, "000000", key_label="rsa-sign")
    with pytest.raises(WrongTokenPin):
        pkcs11_signer(softhsm["module"], TOKEN_LABEL, "", key_label="rsa-sign")


def test_unknown_token(softhsm):
    with pytest.raises(TokenNotFound, match="plugged in"):
        pkcs11_signer(softhsm["module"], "nobody's token", PIN, key_label="rsa-sign")


def test_unknown_key(softhsm):
    with pytest.raises(TokenKeyNotFound):
        pkcs11_signer(softhsm["module"], TOKEN_LABEL, PIN, key_label="no-such-key")


def test_missing_module(tmp_path):
    with pytest.raises(Pkcs11ModuleMissing, match="not installed"):
        pkcs11_signer(str(tmp_path / "absent.so"), TOKEN_LABEL, PIN, key_label="rsa-sign")
    not_a_module = tmp_path / "garbage.so"
    not_a_module.write_bytes(b"not an ELF file")
    with pytest.raises(Pkcs11ModuleMissing, match="could not be loaded"):
        pkcs11_signer(str(not_a_module), TOKEN_LABEL, PIN, key_label="rsa-sign")


def test_configured_from_settings(softhsm, settings):
    settings.PKCS11_MODULE = softhsm["module"]
    settings.PKCS11_TOKEN_LABEL = TOKEN_LABEL
    settings.PKCS11_KEY_LABEL = "ec-sign"

    with pkcs11_signer_from_settings(PIN) as signer:
        pdf = sign_blank_pdf(signer)

    _assert_valid(pdf, softhsm["ec"])


def test_token_objects_lists_keys_and_certificates(softhsm):
    found = token_objects(softhsm["module"], TOKEN_LABEL, PIN)
    assert ("key", "rsa-sign") in found
    assert ("certificate", "root-ec") in found


def test_with_the_signing_core(softhsm):
    """The records app signs through benhan.signing.pades: a visible stamp, PAdES."""
    pades = pytest.importorskip("benhan.signing.pades")
    with pkcs11_signer(softhsm["module"], TOKEN_LABEL, PIN, key_label="rsa-sign") as signer:
        pdf = pades.sign_pdf(
            blank_pdf(),
            signer=signer,
            field_name="DieuDuong",
            box=(50, 50, 250, 120),
            stamp_lines=["Trần Thị Bình", "Điều dưỡng"],
        )

    _assert_valid(pdf, softhsm["rsa"])
