"""A discharge paper from draft to sealed, in a real browser.

The attending doctor signs in, opens the patient's medical record from the
encounter, creates a discharge paper, fills it in (htmx autosaves it as he types,
without reloading the page), completes it and signs with his PIN; the head of
department signs it from her worklist; the records officer finds it on hers, seals
it, opens the sealed PDF and sees it counted on the dashboard. A visitor who is not
signed in opens the public verification page: valid, and no clinical content.
The console is watched the whole way (CSP violations, JS errors, failed requests).
"""

from __future__ import annotations

import re

import pytest
from django.utils import translation
from playwright.sync_api import expect

from benhan.accounts.models import Role
from benhan.records.formtypes import get as get_form_type
from benhan.records.models import Document, DocumentStatus
from benhan.signing import pki

from .conftest import LANG
from .helpers import assert_fields_labelled, tab_to

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PIN = "246810"
TREATMENT = "Kháng sinh Ceftriaxon 2 g/ngày × 7 ngày"
NOTES = "Tái khám sau 2 tuần"


@pytest.fixture(autouse=True)
def _signing_settings(settings, tmp_path):
    settings.SIGNING_PIN_KDF_COST = 10  # cheaper than production: many PIN checks per test
    settings.TSA_URL = ""
    settings.DOCUMENTS_DIR = tmp_path / "documents"


@pytest.fixture
def head_doctor(make_user, khoa_noi):
    """A second doctor of Khoa Nội; signs in with `password`, like the other personas."""
    return make_user("bs_truongkhoa", Role.DOCTOR, [khoa_noi], full_name="Hoàng Thị Lan")


@pytest.fixture
def credentials(facility, doctor, head_doctor):
    pki.ensure_facility_pki(facility)
    pki.issue_staff_credential(doctor, PIN)
    pki.issue_staff_credential(head_doctor, PIN)


def _sign_out(page, tr):
    page.get_by_role("button", name=tr("Sign out"), exact=True).click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))


def _flash(page):
    return page.locator("ul.messages[role=status]")


def _sign_with_pin(page, tr, label):
    """Types the PIN and presses Enter: signing works from the keyboard alone."""
    pin = page.get_by_label(label("Signing PIN"))
    expect(pin).to_have_attribute("type", "password")
    pin.fill(PIN)
    sign = page.get_by_role("button", name=tr("Sign"), exact=True)
    pin.focus()
    tab_to(page, sign, max_presses=3)  # the button follows the PIN field
    page.keyboard.press("Enter")
    expect(_flash(page)).to_contain_text(tr("Signed."))


def test_discharge_paper_signed_sealed_and_counted(
    page,
    browser,
    live_server,
    discharged,
    credentials,
    doctor,
    head_doctor,
    records_officer,
    password,
    sign_in,
    tr,
    label,
):
    patient = discharged.patient
    form_type = get_form_type("discharge_paper")

    # --- The attending doctor creates the discharge paper --------------------------
    sign_in(page, doctor, password)
    page.goto(f"/encounters/{discharged.pk}/")
    page.locator("#main").get_by_role("link", name=tr("Medical record"), exact=True).click()
    expect(page).to_have_url(re.compile(rf"/records/encounter/{discharged.pk}/$"))
    expect(page.get_by_text(tr("No documents yet."))).to_be_visible()
    assert_fields_labelled(page)
    page.get_by_label(label("Form")).select_option(value="discharge_paper")
    page.get_by_role("button", name=tr("New document"), exact=True).click()

    expect(page).to_have_url(re.compile(r"/records/documents/\d+/$"))
    doc = Document.objects.get()
    assert page.url.endswith(f"/records/documents/{doc.pk}/")
    expect(page.locator("h2 .tag")).to_have_text(tr(DocumentStatus.DRAFT.label))
    assert assert_fields_labelled(page) == len(form_type.fields)
    # Pre-filled from the encounter.
    expect(page.get_by_label(label("Diagnosis"))).to_have_value(re.compile(r"^J18\.9"))
    expect(page.get_by_label(label("Admitted"))).not_to_have_value("")
    expect(page.get_by_label(label("Discharged"))).not_to_have_value("")

    # Autosave: typing saves the draft through htmx, without reloading the page.
    page.evaluate("() => { window.__sameDocument = true; }")
    page.get_by_label(label("Treatment given")).press_sequentially(TREATMENT[:20])
    page.get_by_label(label("Treatment given")).fill(TREATMENT)
    page.get_by_label(label("Advice and follow-up")).fill(NOTES)
    saved = tr("Draft saved at %(t)s").split("%(t)s")[0].strip()
    status = page.locator("#save-status")
    expect(status).to_have_attribute("role", "status")
    expect(status).to_contain_text(saved)
    assert page.evaluate("() => window.__sameDocument === true"), "autosave reloaded the page"
    # The last change may still be on its way: wait until both fields are stored.
    for _ in range(50):
        doc.refresh_from_db()
        if doc.draft.get("treatment") == TREATMENT and doc.draft.get("notes") == NOTES:
            break
        page.wait_for_timeout(100)
    assert (doc.draft.get("treatment"), doc.draft.get("notes")) == (TREATMENT, NOTES)
    assert doc.status == DocumentStatus.DRAFT

    page.get_by_role("button", name=tr("Complete"), exact=True).click()
    expect(_flash(page)).to_contain_text(
        tr("Completed: the content is frozen and the PDF is ready to sign.")
    )
    expect(page.locator("h2 .tag")).to_have_text(tr(DocumentStatus.COMPLETED.label))
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.COMPLETED

    _sign_with_pin(page, tr, label)
    # Still waiting for the head of department.
    expect(page.locator("h2 .tag")).to_have_text(tr(DocumentStatus.COMPLETED.label))
    expect(page.get_by_label(label("Signing PIN"))).to_have_count(0)
    _sign_out(page, tr)

    # --- The head of department signs from her worklist ---------------------------------
    sign_in(page, head_doctor, password)
    page.get_by_role("navigation").get_by_role("link", name=tr("Records"), exact=True).click()
    expect(page).to_have_url(re.compile(r"/records/mine/$"))
    page.get_by_role("link", name=form_type.title, exact=True).click()
    expect(page).to_have_url(re.compile(rf"/records/documents/{doc.pk}/$"))
    _sign_with_pin(page, tr, label)
    expect(page.locator("h2 .tag")).to_have_text(tr(DocumentStatus.SIGNED.label))
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.SIGNED
    _sign_out(page, tr)

    # --- The records officer seals it ---------------------------------------------------
    sign_in(page, records_officer, password)
    page.get_by_role("navigation").get_by_role("link", name=tr("Records"), exact=True).click()
    expect(page).to_have_url(re.compile(r"/records/mine/$"))
    row = page.locator("tbody tr").filter(has_text=doc.number)
    expect(row).to_contain_text(patient.full_name)
    expect(row).to_contain_text(tr("Facility seal"))
    row.get_by_role("link", name=form_type.title, exact=True).click()
    expect(page).to_have_url(re.compile(rf"/records/documents/{doc.pk}/$"))
    page.get_by_role("button", name=tr("Seal (facility)"), exact=True).click()
    expect(_flash(page)).to_contain_text(tr("Sealed. The document can no longer change."))
    expect(page.locator("h2 .tag")).to_have_text(tr(DocumentStatus.SEALED.label))
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.SEALED

    # The version's PDF opens.
    pdf_link = page.locator("section table tbody tr").first.get_by_role(
        "link", name="PDF v1", exact=True
    )
    href = pdf_link.get_attribute("href")
    assert href == f"/records/documents/{doc.pk}/v1.pdf"
    response = page.request.get(href)
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.body()[:5] == b"%PDF-"

    # The dashboard counts it: created, completed, signed, sealed; not yet stored.
    lookup_href = page.get_by_role("link", name=doc.lookup_code, exact=True).get_attribute("href")
    page.get_by_role("navigation").get_by_role("link", name=tr("Statistics"), exact=True).click()
    expect(page).to_have_url(re.compile(r"/records/dashboard/$"))
    total = page.locator("tbody tr").filter(
        has=page.get_by_role("rowheader", name=tr("Total"), exact=True)
    )
    expect(total.locator("td")).to_have_text(["1", "1", "1", "1", "0"])

    assert page.watch.problems() == []
    assert page.watch.csp_violations() == []

    # --- Anyone can check it, without signing in, and sees no clinical content ------------
    assert lookup_href == f"/v/{doc.lookup_code}"
    context = browser.new_context(base_url=live_server.url, locale="vi-VN")
    try:
        visitor = context.new_page()
        problems = []
        visitor.on("console", lambda m: m.type == "error" and problems.append(m.text))
        visitor.on("pageerror", lambda e: problems.append(str(e)))
        response = visitor.goto(lookup_href)
        assert response is not None and response.status == 200
        with translation.override(LANG):
            valid = translation.pgettext("signature", "Valid")
        expect(visitor.locator(".tag.ok")).to_have_text(valid)
        expect(visitor.locator("main")).to_contain_text(doc.number)
        expect(visitor.locator("main")).to_contain_text(doc.record.number)
        expect(visitor.locator("main tbody tr")).to_have_count(3)  # two doctors, the seal
        html = visitor.content()
        for secret in (TREATMENT, NOTES, patient.full_name, "J18.9"):
            assert secret not in html
        assert problems == []
    finally:
        context.close()
