"""Pages that htmx also asks for as fragments."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers


def wants_fragment(request: HttpRequest) -> bool:
    # htmx restoring history (Back) asks for the whole page, with HX-Request set too.
    return bool(
        request.headers.get("HX-Request") and not request.headers.get("HX-History-Restore-Request")
    )


def render_page_or_fragment(
    request: HttpRequest, page: str, fragment: str, ctx: dict
) -> HttpResponse:
    """The fragment for an htmx request, else the full page.

    Vary on the htmx headers, or the browser's cache hands the fragment back as the
    page when the user presses Back.
    """
    template = fragment if wants_fragment(request) else page
    response = render(request, template, ctx)
    patch_vary_headers(response, ["HX-Request", "HX-History-Restore-Request"])
    return response
