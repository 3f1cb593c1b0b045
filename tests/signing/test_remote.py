"""The remote signer (CSC API) against a stand-in service started by the test."""

from __future__ import annotations

import socket

import pytest

from benhan.signing.remote import (
    RemoteServiceUnavailable,
    RemoteSigningRefused,
    csc_login,
    list_credentials,
    remote_signer,
    remote_signer_from_settings,
)

from .csc_standin import (
    CREDENTIAL_ID,
    OTP,
    PASSWORD,
    USERNAME,
    CscStandin,
    blank_pdf,
    cert_der,
    sign_blank_pdf,
    validate_single_signature,
)


@pytest.fixture
def service():
    with CscStandin() as running:
        yield running


def assert_signed_by(pdf: bytes, service: CscStandin) -> None:
    status = validate_single_signature(pdf, service.root_cert)
    assert status.intact
    assert status.valid
    assert status.trusted
    assert status.bottom_line
    assert status.signing_cert.dump() == cert_der(service.cert)


def test_signs_after_the_user_approves_with_the_otp(service):
    signer = remote_signer(service.url, CREDENTIAL_ID, OTP)

    pdf = sign_blank_pdf(signer)

    assert_signed_by(pdf, service)
    assert len(service.signed) == 1
    endpoints = [endpoint for endpoint, _ in service.requests]
    assert endpoints == ["credentials/info", "credentials/authorize", "signatures/signHash"]


def test_wrong_otp_is_refused_before_anything_is_signed(service):
    with pytest.raises(RemoteSigningRefused) as refused:
        remote_signer(service.url, CREDENTIAL_ID, "000000")

    assert refused.value.csc_error == "invalid_otp"
    assert "code" in str(refused.value)
    assert service.signed == []
    assert "signatures/signHash" not in [endpoint for endpoint, _ in service.requests]


def test_unknown_credential_is_refused(service):
    with pytest.raises(RemoteSigningRefused):
        remote_signer(service.url, "someone-else", OTP)
    assert service.signed == []


def test_service_down_is_unavailable():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with pytest.raises(RemoteServiceUnavailable) as down:
        remote_signer(f"http://127.0.0.1:{port}", CREDENTIAL_ID, OTP, timeout=5)
    assert "cannot be reached" in str(down.value)


def test_service_that_stops_between_approval_and_signing(service):
    signer = remote_signer(service.url, CREDENTIAL_ID, OTP, timeout=5)
    service.stop()

    with pytest.raises(RemoteServiceUnavailable):
        sign_blank_pdf(signer)


def test_plain_http_is_refused_except_on_loopback():
    with pytest.raises(RemoteServiceUnavailable, match="HTTPS"):
        remote_signer("http://ca.example.vn", CREDENTIAL_ID, OTP)


def test_an_approval_is_good_for_one_signature(service):
    signer = remote_signer(service.url, CREDENTIAL_ID, OTP)
    sign_blank_pdf(signer)

    with pytest.raises(RemoteSigningRefused, match="already been used"):
        sign_blank_pdf(signer)
    assert len(service.signed) == 1


def test_hash_bound_approval_scal2():
    with CscStandin(scal=2) as service:
        signer = remote_signer(service.url, CREDENTIAL_ID, OTP)
        # SCAL 2: the approval names the hash, so it happens during signing.
        assert [endpoint for endpoint, _ in service.requests] == ["credentials/info"]

        pdf = sign_blank_pdf(signer)

        assert_signed_by(pdf, service)
        authorize = dict(service.requests)["credentials/authorize"]
        assert authorize["hash"] == service.signed


def test_hash_bound_approval_wrong_otp_signs_nothing():
    with CscStandin(scal=2) as service:
        signer = remote_signer(service.url, CREDENTIAL_ID, "999999")
        with pytest.raises(RemoteSigningRefused):
            sign_blank_pdf(signer)
        assert service.signed == []


def test_rsa_key_and_csc_v2_field_names():
    with CscStandin(key_type="rsa", scal=2) as service:
        signer = remote_signer(service.url, CREDENTIAL_ID, OTP, api_version="v2")

        pdf = sign_blank_pdf(signer)

        assert_signed_by(pdf, service)
        sign_hash = dict(service.requests)["signatures/signHash"]
        assert "hashes" in sign_hash
        assert "hashAlgorithmOID" in sign_hash


def test_login_and_list_credentials():
    with CscStandin(require_login=True) as service:
        with pytest.raises(RemoteSigningRefused):
            csc_login(service.url, USERNAME, "wrong")
        token = csc_login(service.url, USERNAME, PASSWORD)

        assert list_credentials(service.url, oauth_token=token) == [CREDENTIAL_ID]
        with pytest.raises(RemoteSigningRefused):  # no token
            remote_signer(service.url, CREDENTIAL_ID, OTP)
        pdf = sign_blank_pdf(remote_signer(service.url, CREDENTIAL_ID, OTP, oauth_token=token))
        assert_signed_by(pdf, service)


def test_with_the_signing_core(service):
    """The records app signs through benhan.signing.pades: a visible stamp, PAdES."""
    pades = pytest.importorskip("benhan.signing.pades")
    signer = remote_signer(service.url, CREDENTIAL_ID, OTP)

    pdf = pades.sign_pdf(
        blank_pdf(),
        signer=signer,
        field_name="BacSi",
        box=(50, 50, 250, 120),
        stamp_lines=["Nguyễn Văn An", "Bác sĩ điều trị"],
    )

    assert_signed_by(pdf, service)
    assert len(service.signed) == 1  # one approval, one remote signature


def test_configured_from_the_environment(service, monkeypatch, settings):
    """Until settings.py defines CSC_*, the BENHAN_CSC_* variables are read directly."""
    for name in ("CSC_URL", "CSC_TOKEN", "CSC_API_VERSION", "CSC_TIMEOUT"):
        if hasattr(settings, name):
            delattr(settings, name)
    monkeypatch.setenv("BENHAN_CSC_URL", service.url)
    monkeypatch.setenv("BENHAN_CSC_API_VERSION", "v2")

    pdf = sign_blank_pdf(remote_signer_from_settings(CREDENTIAL_ID, OTP))

    assert_signed_by(pdf, service)
    assert "hashes" in dict(service.requests)["signatures/signHash"]  # v2 field names
