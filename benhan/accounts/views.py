from __future__ import annotations

import segno
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp import match_token
from django_otp.plugins.otp_totp.models import TOTPDevice

from benhan.accounts.forms import LoginForm, TokenForm
from benhan.audit import chain


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)
        chain.record(chain.Actor.from_request(self.request), "login")
        return response


def logout_view(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponse(status=405)
    if request.user.is_authenticated:
        chain.record(chain.Actor.from_request(request), "logout")
    from django.contrib.auth import logout

    logout(request)
    return redirect("accounts:login")


def _safe_next(request: HttpRequest) -> str:
    target = request.GET.get("next") or request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}):
        return "/"
    return target


@login_required
@require_http_methods(["GET", "POST"])
def otp_verify(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = match_token(request.user, form.cleaned_data["token"])
        if device is not None:
            otp_login(request, device)
            return redirect(_safe_next(request))
        chain.record(chain.Actor.from_request(request), "login.otp_failed")
        form.add_error("token", _("That code is not right, or it has expired. Try the next one."))
    return render(request, "accounts/otp_verify.html", {"form": form, "next": _safe_next(request)})


@login_required
@require_http_methods(["GET", "POST"])
def otp_setup(request: HttpRequest) -> HttpResponse:
    """Enrol a TOTP authenticator: show the QR code, confirm with one code."""
    user = request.user
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        if TOTPDevice.objects.filter(user=user, confirmed=True).exists() and not user.is_verified():
            return redirect("accounts:otp_verify")
        device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["token"]):
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            # One authenticator at a time: the new one replaces any older.
            TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
            otp_login(request, device)
            chain.record(chain.Actor.from_request(request), "account.2fa_enabled")
            messages.success(request, _("Two-factor authentication is on."))
            return redirect("core:home")
        form.add_error("token", _("That code is not right. Check the phone's clock and try again."))
    qr = segno.make(device.config_url, error="m")
    ctx = {
        "form": form,
        "qr_svg": qr.svg_inline(scale=4, dark="#111"),
        "secret": _b32(device.bin_key),
    }
    return render(request, "accounts/otp_setup.html", ctx)


def _b32(key: bytes) -> str:
    import base64

    raw = base64.b32encode(key).decode().rstrip("=")
    return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4))
