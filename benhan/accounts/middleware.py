"""Session rules: idle timeout and two-factor authentication."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django_otp import user_has_device

# Refresh the stored last-activity time at most this often, so ordinary browsing
# does not write the session row on every request.
_TOUCH_EVERY = 60


class IdleTimeoutMiddleware:
    """Sign out a session after BENHAN_IDLE_TIMEOUT_MINUTES without a request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = int(time.time())
            last = request.session.get("last_seen", now)
            if now - last > settings.IDLE_TIMEOUT_MINUTES * 60:
                logout(request)
                if request.headers.get("HX-Request"):
                    response = HttpResponse(status=401)
                    response["HX-Redirect"] = reverse("accounts:login") + "?timeout=1"
                    return response
                return redirect(reverse("accounts:login") + "?timeout=1")
            if now - last >= _TOUCH_EVERY or "last_seen" not in request.session:
                request.session["last_seen"] = now
        return self.get_response(request)


# Pages a signed-in user may reach before finishing the second factor. Not the rest of
# /accounts/: a stolen password alone must not be enough to change the password.
_OPEN_PATHS = ("/accounts/login/", "/accounts/logout/", "/accounts/2fa/", "/static/", "/i18n/")


class TwoFactorMiddleware:
    """Staff with a TOTP device must enter a code; roles that require it must set one up."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            user.is_authenticated
            and not request.path.startswith(_OPEN_PATHS)
            and not user.is_verified()
        ):
            if user_has_device(user):
                target = urlencode({"next": request.get_full_path()})
                return redirect(reverse("accounts:otp_verify") + "?" + target)
            if user.role in settings.TWO_FACTOR_REQUIRED_ROLES or user.is_superuser:
                return redirect("accounts:otp_setup")
        return self.get_response(request)
