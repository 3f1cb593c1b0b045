from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.middleware.locale import LocaleMiddleware as DjangoLocaleMiddleware
from django.utils import translation

# No inline scripts or styles anywhere: every script is a static file.
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # The Django admin uses inline scripts; it is for configuration only and is
        # allowed them. Everything staff use clinically gets the strict policy.
        if not request.path.startswith("/admin/"):
            response.headers.setdefault("Content-Security-Policy", CSP)
        return response


class LocaleMiddleware(DjangoLocaleMiddleware):
    """Vietnamese unless the user chose otherwise.

    Django's own middleware follows the browser's Accept-Language, and many clinic
    PCs run an English Windows: staff would get English without asking. Here only
    the language cookie (set by the switch in the top bar) changes the language.
    """

    def process_request(self, request: HttpRequest) -> None:
        chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
        if chosen not in dict(settings.LANGUAGES):
            chosen = settings.LANGUAGE_CODE
        translation.activate(chosen)
        request.LANGUAGE_CODE = chosen


class RejectNulMiddleware:
    """Answer 400 to a request whose parameters contain a NUL character.

    No legitimate form sends one, SQLite would store it, and PostgreSQL refuses it
    with an error deep inside a view (a 500). Checking once here covers every
    parameter, including those read outside a Django form.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "%00" in request.META.get("QUERY_STRING", "") or _has_nul(request):
            return HttpResponseBadRequest(
                "Dữ liệu gửi lên chứa ký tự không hợp lệ. / The request contains an invalid "
                "character.",
                content_type="text/plain; charset=utf-8",
            )
        return self.get_response(request)


def _has_nul(request: HttpRequest) -> bool:
    if request.method != "POST":
        return False
    return any("\x00" in value for values in request.POST.lists() for value in values[1])
