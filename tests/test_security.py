"""Transport and session rules: CSP, lockout, idle timeout, two-factor, logout."""

from __future__ import annotations

import re
import time

import pytest
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from benhan.audit.models import AuditEvent

LOGIN = reverse("accounts:login")
HOME = reverse("core:home")
OTP_VERIFY = reverse("accounts:otp_verify")
OTP_SETUP = reverse("accounts:otp_setup")


def token_for(device: TOTPDevice) -> str:
    """The code the user's authenticator app shows now."""
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


# --- Content Security Policy ---------------------------------------------------------------


@pytest.fixture
def staff_pages(patient, encounter, diagnosis):
    return [
        HOME,
        reverse("patients:search") + "?q=nguyen",
        reverse("patients:register"),
        reverse("patients:detail", args=[patient.pk]),
        reverse("patients:edit", args=[patient.pk]),
        reverse("encounters:detail", args=[encounter.pk]),
        reverse("encounters:diagnoses", args=[encounter.pk]),
        reverse("encounters:transfer", args=[encounter.pk]),
        reverse("encounters:discharge", args=[encounter.pk]),
        reverse("encounters:open", args=[patient.pk]),
    ]


def test_it_sends_a_strict_csp_on_staff_pages(staff_pages, doctor, client_for):
    """Every staff page forbids inline scripts and styles and framing."""
    client = client_for(doctor)
    for url in staff_pages:
        r = client.get(url)
        assert r.status_code == 200, url
        csp = r["Content-Security-Policy"]
        assert "default-src 'self'" in csp
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        assert r["X-Frame-Options"] == "DENY"
        assert r["X-Content-Type-Options"] == "nosniff"


def test_it_sends_csp_on_login_and_error_pages(outsider_doctor, patient, client_for):
    r = client_for(None).get(LOGIN)
    assert "unsafe-inline" not in r["Content-Security-Policy"]
    r = client_for(outsider_doctor).get(reverse("patients:detail", args=[patient.pk]))
    assert r.status_code == 403
    assert "script-src 'self'" in r["Content-Security-Policy"]


def test_it_needs_no_inline_script_or_style(staff_pages, doctor, client_for):
    """The pages obey their own policy: no inline <script>, style or on* handlers,
    which the browser would block."""
    client = client_for(doctor)
    for url in [*staff_pages, LOGIN]:
        html = client.get(url).content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), url
        assert not re.search(r"<style[\s>]", html), url
        assert not re.search(r"\sstyle=", html), url
        assert not re.search(r"\son[a-z]+=", html), url


# --- Login and lockout -----------------------------------------------------------------------


def test_it_signs_in_with_the_right_password(doctor, password, client_for):
    client = client_for(None)
    r = client.post(LOGIN, {"username": "doctor", "password": password})
    assert r.status_code == 302
    assert r["Location"] == HOME
    assert signed_in(client)
    assert AuditEvent.objects.filter(action="login", actor=doctor).exists()
    cookie = client.cookies["sessionid"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"


def test_it_locks_out_after_5_failed_logins(doctor, password, client_for):
    """Five wrong passwords lock the account from this address: even the right password
    is then refused, and nobody is signed in."""
    client = client_for(None)
    for attempt in range(1, 5):
        r = client.post(LOGIN, {"username": "doctor", "password": f"sai-{attempt}"})
        assert r.status_code == 200, attempt
        assert not signed_in(client)
    r = client.post(LOGIN, {"username": "doctor", "password": "sai-5"})
    assert r.status_code == 429
    assert "accounts/locked_out.html" in [t.name for t in r.templates]

    r = client.post(LOGIN, {"username": "doctor", "password": password})
    assert r.status_code == 429
    assert not signed_in(client)
    assert not AuditEvent.objects.filter(action="login").exists()


def test_it_locks_only_the_attacked_account(doctor, nurse, password, client_for):
    """Lockout is per username and address: a colleague at the same PC still signs in."""
    client = client_for(None)
    for attempt in range(5):
        client.post(LOGIN, {"username": "doctor", "password": f"sai-{attempt}"})
    r = client.post(LOGIN, {"username": "nurse", "password": password})
    assert r.status_code == 302
    assert signed_in(client)


def test_it_forgets_failures_after_a_success(doctor, password, client_for):
    """Four typos then the right password: the counter starts again."""
    client = client_for(None)
    for attempt in range(4):
        client.post(LOGIN, {"username": "doctor", "password": f"sai-{attempt}"})
    assert client.post(LOGIN, {"username": "doctor", "password": password}).status_code == 302
    client = client_for(None)
    for attempt in range(4):
        r = client.post(LOGIN, {"username": "doctor", "password": f"sai-{attempt}"})
        assert r.status_code == 200


# --- Idle timeout -----------------------------------------------------------------------------


def set_last_seen(client, seconds_ago: int) -> None:
    session = client.session
    session["last_seen"] = int(time.time()) - seconds_ago
    session.save()


def test_it_signs_out_an_idle_session(doctor, client_for, settings):
    """After IDLE_TIMEOUT_MINUTES without a request, the next one goes to the login page
    with ?timeout=1, and the session is gone."""
    client = client_for(doctor)
    set_last_seen(client, settings.IDLE_TIMEOUT_MINUTES * 60 + 1)
    r = client.get(HOME)
    assert r.status_code == 302
    assert r["Location"] == LOGIN + "?timeout=1"
    assert not signed_in(client)
    assert client.get(HOME)["Location"].startswith(LOGIN + "?next=")


def test_it_tells_htmx_to_go_to_login_on_timeout(doctor, client_for, settings):
    client = client_for(doctor)
    set_last_seen(client, settings.IDLE_TIMEOUT_MINUTES * 60 + 1)
    r = client.get(reverse("patients:search"), {"q": "abc"}, headers={"HX-Request": "true"})
    assert r.status_code == 401
    assert r["HX-Redirect"] == LOGIN + "?timeout=1"


def test_it_keeps_an_active_session(doctor, client_for, settings):
    """A request inside the limit passes and restarts the clock."""
    client = client_for(doctor)
    set_last_seen(client, settings.IDLE_TIMEOUT_MINUTES * 60 - 60)
    assert client.get(HOME).status_code == 200
    assert client.session["last_seen"] >= int(time.time()) - 5


# --- Two-factor authentication -----------------------------------------------------------------


def test_it_sends_an_admin_without_totp_to_setup(admin, client_for):
    """Administrators must enrol an authenticator before anything else."""
    client = client_for(admin, verified=False)
    for url in (HOME, reverse("audit:events"), reverse("patients:search")):
        r = client.get(url)
        assert r.status_code == 302, url
        assert r["Location"] == OTP_SETUP
    assert client.get(OTP_SETUP).status_code == 200


def test_it_enrols_an_authenticator(admin, client_for):
    """The setup page shows a QR code; the first right code confirms the device and
    verifies the session."""
    client = client_for(admin, verified=False)
    r = client.get(OTP_SETUP)
    assert "<svg" in r.content.decode()
    device = TOTPDevice.objects.get(user=admin, confirmed=False)

    r = client.post(OTP_SETUP, {"token": "000000" if token_for(device) != "000000" else "111111"})
    assert r.status_code == 200
    assert "token" in r.context["form"].errors
    device.refresh_from_db()
    assert device.confirmed is False
    device.throttle_reset()

    r = client.post(OTP_SETUP, {"token": token_for(device)})
    assert r.status_code == 302
    assert r["Location"] == HOME
    device.refresh_from_db()
    assert device.confirmed is True
    assert client.get(HOME).status_code == 200
    assert AuditEvent.objects.filter(action="account.2fa_enabled", actor=admin).exists()


@pytest.fixture
def doctor_device(doctor):
    """The doctor opted in to two-factor authentication."""
    return TOTPDevice.objects.create(user=doctor, name="authenticator", confirmed=True)


def test_it_asks_for_the_code_of_a_confirmed_device(doctor_device, doctor, client_for):
    """Staff with a device pass /accounts/2fa/ before any page; the right code lets
    them through to where they were going."""
    client = client_for(doctor)
    r = client.get(HOME)
    assert r.status_code == 302
    assert r["Location"] == OTP_VERIFY + "?next=%2F"
    assert client.get(r["Location"]).status_code == 200

    r = client.post(OTP_VERIFY + "?next=%2F", {"token": token_for(doctor_device), "next": "/"})
    assert r.status_code == 302
    assert r["Location"] == "/"
    assert client.get(HOME).status_code == 200


def test_it_refuses_a_wrong_code(doctor_device, doctor, client_for):
    client = client_for(doctor)
    wrong = "123456" if token_for(doctor_device) != "123456" else "654321"
    r = client.post(OTP_VERIFY, {"token": wrong})
    assert r.status_code == 200
    assert "token" in r.context["form"].errors
    assert AuditEvent.objects.filter(action="login.otp_failed", actor=doctor).exists()
    assert client.get(HOME).status_code == 302


@pytest.mark.parametrize("token", ["12345", "abcdef", "1234567", ""])
def test_it_refuses_malformed_codes(token, doctor_device, doctor, client_for):
    r = client_for(doctor).post(OTP_VERIFY, {"token": token})
    assert r.status_code == 200
    assert "token" in r.context["form"].errors


def test_it_sends_an_enrolled_admin_to_verify_not_setup(admin, client_for):
    """An admin with a device but an unverified session is asked for the code."""
    TOTPDevice.objects.create(user=admin, name="authenticator", confirmed=True)
    client = client_for(admin, verified=False)
    assert client.get(HOME)["Location"] == OTP_VERIFY + "?next=%2F"
    assert client.get(OTP_SETUP)["Location"] == OTP_VERIFY


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/"])
def test_it_stays_on_site_after_the_code(target, doctor_device, doctor, client_for):
    client = client_for(doctor)
    r = client.post(OTP_VERIFY, {"token": token_for(doctor_device), "next": target})
    assert r.status_code == 302
    assert r["Location"] == "/"


# --- Logout ------------------------------------------------------------------------------------


def test_it_logs_out_by_post_only(doctor, client_for):
    """GET cannot sign anyone out (a link or image could); POST does, and is audited."""
    client = client_for(doctor)
    assert client.get(reverse("accounts:logout")).status_code == 405
    assert signed_in(client)
    r = client.post(reverse("accounts:logout"))
    assert r.status_code == 302
    assert r["Location"] == LOGIN
    assert not signed_in(client)
    assert AuditEvent.objects.filter(action="logout", actor=doctor).exists()
    assert client.get(HOME)["Location"].startswith(LOGIN)


def test_it_needs_csrf_for_logout(doctor):
    """Logout from another site is refused by the CSRF check."""
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(doctor, backend="django.contrib.auth.backends.ModelBackend")
    assert client.post(reverse("accounts:logout")).status_code == 403
    assert signed_in(client)


# --- What the second factor protects --------------------------------------------------------

PASSWORD_CHANGE = reverse("accounts:password_change")


def test_it_needs_the_second_factor_to_change_the_password(doctor_device, doctor, client_for):
    """A stolen password alone must not be enough to change the password."""
    client = client_for(doctor)
    r = client.get(PASSWORD_CHANGE)
    assert r.status_code == 302
    assert r["Location"].startswith(OTP_VERIFY)


def test_it_needs_an_authenticator_before_an_admin_changes_the_password(admin, client_for):
    r = client_for(admin, verified=False).get(PASSWORD_CHANGE)
    assert r["Location"] == OTP_SETUP


def test_it_changes_the_password_of_a_verified_user(doctor, password, client_for):
    client = client_for(doctor)
    new = "Một-mật-khẩu-mới-2025"
    r = client.post(
        PASSWORD_CHANGE, {"old_password": password, "new_password1": new, "new_password2": new}
    )
    assert r.status_code == 302
    doctor.refresh_from_db()
    assert doctor.check_password(new)


def test_it_needs_the_second_factor_for_the_admin_site(admin, client_for):
    """The Django admin is behind 2FA too, and holds no clinical data."""
    assert client_for(admin, verified=False).get("/admin/")["Location"] == OTP_SETUP
    r = client_for(admin).get("/admin/")
    assert r.status_code == 200
    models = {
        f"{app['app_label']}.{m['object_name']}"
        for app in r.context["app_list"]
        for m in app["models"]
    }
    assert "accounts.User" in models
    # Configuration only: the code list may be edited, clinical rows never appear.
    clinical = {
        "patients.Patient",
        "encounters.Encounter",
        "encounters.Stay",
        "encounters.Diagnosis",
        "audit.AuditEvent",
        "audit.BreakGlassGrant",
    }
    assert not models & clinical


def test_it_answers_health_checks_without_login(db, client_for):
    """Monitoring needs no account and learns nothing but "ok"."""
    r = client_for(None).get(reverse("core:healthz"))
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
