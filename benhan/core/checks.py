"""System checks for the configuration (run by `benhan check` and at start-up)."""

from django.conf import settings
from django.core.checks import Warning, register


@register()
def settings_check(app_configs, **kwargs):
    items = []
    if settings.DEBUG:
        items.append(
            Warning(
                "BENHAN_DEBUG is on: never run a clinic with it (it shows patient data in errors).",
                id="benhan.W001",
            )
        )
    if settings.SERVE_HOST not in {"127.0.0.1", "localhost", "::1"} and not settings.HTTPS:
        items.append(
            Warning(
                "The server listens beyond this machine without BENHAN_HTTPS: put it behind a "
                "TLS proxy and set BENHAN_HTTPS=1 (see docs/deployment.md).",
                id="benhan.W002",
            )
        )
    return items
