"""The Content-Security-Policy holds on every page staff use, and nothing breaks it.

The policy (benhan/core/middleware.py) allows scripts and styles only from the
application's own static files. A template that gains an inline script, a style
attribute or an onclick would be blocked by the browser and log a violation; htmx
injecting its indicator styles would too. This walks a first visit with
JavaScript on, with a validation error, an htmx search and a language switch on
the way, and listens to the console the whole time.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from benhan.accounts.models import Role
from benhan.patients.models import Patient

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NAME = "Trịnh Thị Huyền Trâm"
CCCD = "079303000123"  # Hồ Chí Minh, born in the 2000s and female (3), year 03


def test_no_csp_violation_and_no_js_error(page, make_staff, khoa_kham, tr, label, sign_in):
    clerk = make_staff("le_tan", Role.RECEPTIONIST, [khoa_kham], full_name="Hồ Thị Ngọc")
    documents = []  # (url, Content-Security-Policy header) of every page loaded
    page.on(
        "response",
        lambda r: (
            r.request.resource_type == "document"
            and documents.append((r.url, r.headers.get("content-security-policy")))
        ),
    )

    sign_in(page, clerk)

    # A registration with errors first: the error page is held to the policy too.
    page.goto("/patients/new/")
    page.get_by_label(label("Full name")).fill(NAME)
    page.get_by_role("button", name=tr("Register"), exact=True).click()
    expect(page.locator(".field.invalid").first).to_be_visible()
    page.get_by_label(label("Date of birth")).fill("02/09/2003")
    page.get_by_role("radio", name=tr("Female"), exact=True).check()
    page.get_by_label(label("Citizen ID (CCCD)")).fill(CCCD)
    page.get_by_role("button", name=tr("Register"), exact=True).click()
    expect(page).to_have_url(re.compile(r"/patients/\d+/$"))
    patient = Patient.objects.get(cccd=CCCD)

    # The htmx search: htmx loads and runs under the policy, and swaps results in.
    page.goto("/patients/")
    assert page.evaluate("() => typeof htmx") == "object", "htmx did not load"
    search = page.get_by_label(tr("Search patients"), exact=True)
    search.press_sequentially("tr")  # too short: the hint comes back through htmx
    expect(page.locator("#results")).to_contain_text(tr("Type at least 3 letters of the name."))
    search.press_sequentially("inh huyen")
    result = page.locator("#results").get_by_role("link", name=NAME, exact=True)
    expect(result).to_be_visible()
    result.click()

    page.get_by_role("link", name=tr("Open a visit"), exact=True).click()
    page.get_by_label(label("Reason for visit / admission")).fill("Khám thai định kỳ")
    page.get_by_role("button", name=tr("Open"), exact=True).click()
    expect(page).to_have_url(re.compile(rf"/patients/{patient.pk}/$"))
    expect(page.locator("ul.messages")).to_be_visible()

    # The worklist, in English and back in Vietnamese.
    page.goto("/")
    expect(page.locator("main table")).to_contain_text(NAME)
    page.locator("form.lang button[name=language]").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.locator("form.lang button[name=language]").click()
    expect(page.locator("html")).to_have_attribute("lang", "vi")

    page.get_by_role("button", name=tr("Sign out"), exact=True).click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    page.wait_for_load_state("load")

    watch = page.watch
    assert watch.csp_violations() == []
    assert watch.page_errors == []
    assert watch.failed_requests == []
    # The one error response is the registration with missing fields, which Chromium
    # also logs; any other console error is a bug.
    assert [r.split(" ", 1)[0] for r in watch.bad_responses] == ["422"]
    errors = [e for e in watch.console_errors() if "status of 422" not in e]
    assert errors == []

    # Every page came with the strict policy.
    assert len(documents) >= 10
    for url, policy in documents:
        assert policy is not None, f"{url} has no Content-Security-Policy"
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy, (url, policy)

    # And the listener does hear a violation: an inline script is blocked and reported.
    with page.expect_console_message(lambda m: "Content Security Policy" in m.text):
        page.evaluate(
            """() => {
                const s = document.createElement("script");
                s.textContent = "window.__inlineRan = true";
                document.head.append(s);
            }"""
        )
    assert page.evaluate("() => window.__inlineRan") is None
    assert len(watch.csp_violations()) == 1
