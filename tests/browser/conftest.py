"""Browser tests: Debian's Chromium driven by Playwright against pytest-django's live_server.

Never downloads a browser: it uses /usr/bin/chromium (`apt-get install chromium`, which
`make browser` does when it can) and skips every browser test with a notice when that
is missing.

Fixtures here:

* browser     one headless Chromium for the browser tests (per xdist worker)
* page        a fresh context and page per test, in Vietnamese, on the live server,
              watching the console, page errors and failed requests (`page.watch`);
              a failed test leaves a screenshot in $TMPDIR/benhan-browser/
* page_without_js  the same with JavaScript turned off
* make_staff  make_staff(username, role, departments): a user who signs in with PASSWORD
* tr          tr("Sign out") -> the text the server renders for that msgid in the
              page's language, so the tests pass whether or not the translations are
              compiled yet
* label       label("Full name") -> a pattern matching that field's <label> text
* sign_in     signs a user in through the real login form
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .helpers import PASSWORD

LANG = "vi"  # the clinic's default language: what staff see
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium tries to reach Google's services; this machine (and CI)
    # has no network, and the tests must not wait on it.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Screenshots of failed tests go here.
ARTIFACTS = Path(
    os.environ.get("BENHAN_BROWSER_ARTIFACTS") or Path(tempfile.gettempdir()) / "benhan-browser"
)


def chromium_path() -> str | None:
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


@pytest.fixture(scope="package")
def browser():
    """One Chromium for the browser tests, closed when the last of them has run.

    Package scope, not session: while Playwright's sync API is alive it keeps its own
    asyncio event loop running (in a greenlet) on the main thread. Django's
    async_unsafe guard sees that loop and refuses every ORM call on the main thread
    (test bodies, fixtures, the transactional flush) with SynchronousOnlyOperation,
    although they are ordinary synchronous calls. The guard is a false alarm here, so
    DJANGO_ALLOW_ASYNC_UNSAFE switches it off, and only while the browser is open, so
    that the rest of the suite keeps the guard.
    """
    path = chromium_path()
    if path is None:
        pytest.skip("chromium not installed: apt-get install chromium (or `make browser`)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright not installed: pip install -e .[dev]"
    )
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_api.sync_playwright() as pw:
            chromium = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    """The manifest storage needs `collectstatic`; the live server serves the source
    files from STATICFILES_DIRS (pytest-django wraps it in StaticFilesHandler)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@dataclass
class Watch:
    """What went wrong in the browser while a test ran."""

    console: list[tuple[str, str]] = field(default_factory=list)  # (type, text)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    bad_responses: list[str] = field(default_factory=list)  # status >= 400

    def console_errors(self) -> list[str]:
        return [text for kind, text in self.console if kind == "error"]

    def csp_violations(self) -> list[str]:
        return [text for _kind, text in self.console if "content security policy" in text.lower()]

    def problems(self) -> list[str]:
        return [
            *(f"console {kind}: {text}" for kind, text in self.console if kind == "error"),
            *(f"page error: {e}" for e in self.page_errors),
            *(f"request failed: {r}" for r in self.failed_requests),
            *(f"HTTP error: {r}" for r in self.bad_responses),
        ]


def _record_failure(watch: Watch, request) -> None:
    # A request the browser itself cancels because the page navigated on (the
    # favicon of a page left at once, typically) is not a failure of the app.
    if "ERR_ABORTED" in (request.failure or ""):
        return
    watch.failed_requests.append(f"{request.url} {request.failure or ''}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _new_page(browser, live_server, **context_options):
    context = browser.new_context(
        base_url=live_server.url,
        locale="vi-VN",
        timezone_id="Asia/Ho_Chi_Minh",
        viewport={"width": 1280, "height": 900},
        **context_options,
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    watch = Watch()
    page.on("console", lambda m: watch.console.append((m.type, m.text)))
    page.on("pageerror", lambda e: watch.page_errors.append(str(e)))
    page.on("requestfailed", lambda r: _record_failure(watch, r))
    page.on(
        "response",
        lambda r: r.status >= 400 and watch.bad_responses.append(f"{r.status} {r.url}"),
    )
    page.watch = watch
    return context, page


def _finish(context, page, request) -> None:
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.nodeid)
        with contextlib.suppress(Exception):  # a failed screenshot must not hide the failure
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    context.close()


@pytest.fixture
def page(browser, live_server, request) -> Iterator:
    """A page on the live server, with JavaScript."""
    context, page = _new_page(browser, live_server)
    yield page
    _finish(context, page, request)


@pytest.fixture
def page_without_js(browser, live_server, request) -> Iterator:
    """A page on the live server with JavaScript turned off."""
    context, page = _new_page(browser, live_server, java_script_enabled=False)
    yield page
    _finish(context, page, request)


@pytest.fixture
def tr() -> Callable[..., str]:
    """tr(msgid, **params): the server's text for msgid in LANG."""
    from django.utils import translation

    def translate(msgid, **params) -> str:
        with translation.override(LANG):
            text = str(translation.gettext(msgid) if isinstance(msgid, str) else msgid)
        return text % params if params else text

    return translate


@pytest.fixture
def label(tr) -> Callable[[str], re.Pattern]:
    """label(msgid): matches a Django label ("Full name:"), whole, with or without colon."""
    return lambda msgid: re.compile(rf"^\s*{re.escape(tr(msgid))}\s*:?\s*$")


@pytest.fixture
def sign_in(label, tr) -> Callable:
    """sign_in(page, user): through the login form, as a person would."""
    from playwright.sync_api import expect

    def do(page, user, password: str = PASSWORD) -> None:
        """The user must have been created with `password`."""
        page.goto("/accounts/login/")
        page.get_by_label(label("Username")).fill(user.username)
        page.get_by_label(label("Password")).fill(password)
        page.get_by_role("button", name=tr("Sign in"), exact=True).click()
        expect(page).to_have_url(re.compile(r"^https?://[^/]+/$"))

    return do


@pytest.fixture
def make_staff(make_user) -> Callable:
    """make_staff(username, role, departments): a user who signs in with PASSWORD."""

    def make(username, role, departments=(), **fields):
        user = make_user(username, role, departments, **fields)
        user.set_password(PASSWORD)
        user.save(update_fields=["password"])
        return user

    return make
