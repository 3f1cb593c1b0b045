"""Template context for the top bar: the laboratory link and the inbox badge.

The unread count is one COUNT query, made only when a page actually shows the badge
(doctors and nurses): htmx fragments rendered with a request context do not pay for it.
"""

from __future__ import annotations

from functools import cache, cached_property

from django.http import HttpRequest

from benhan.accounts.models import Role


@cache
def htmx_tag() -> str:
    """The script tag templates/includes/htmx.html writes, exactly (base.html removes it
    from a page's own scripts when the badge has loaded htmx already)."""
    from django.template.loader import render_to_string

    return render_to_string("includes/htmx.html").strip()


class Inbox:
    """The badge: specimens with unread signed results, red when one is critical."""

    def __init__(self, user):
        self.user = user

    @cached_property
    def _counts(self) -> tuple[int, bool]:
        from benhan.lab.views import unread_counts

        return unread_counts(self.user)

    @property
    def n(self) -> int:
        return self._counts[0]

    @property
    def critical(self) -> bool:
        return self._counts[1]


def lab(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or user.facility_id is None:
        return {}
    if user.role == Role.LAB_TECH:
        return {"lab_menu": "work"}
    if user.role == Role.NURSE:
        return {"lab_menu": "collect", "lab_inbox": Inbox(user), "lab_htmx": htmx_tag()}
    if user.role == Role.DOCTOR:
        return {"lab_inbox": Inbox(user), "lab_htmx": htmx_tag()}
    return {}
