"""A patient's first visit, at the registration desk, in a real browser.

The receptionist signs in through the login form, registers a new patient whose
name has Vietnamese diacritics, finds her again by typing the name without accents
(results arrive as she types, through htmx), opens an outpatient visit for her and
signs out.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from benhan.accounts.models import Role
from benhan.encounters.models import Encounter, EncounterKind
from benhan.patients.models import Patient, Sex

from .helpers import PASSWORD, assert_fields_labelled

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NAME = "Đặng Thị Ánh Nguyệt"
BIRTH = "14/03/1992"
# Thanh Hóa (038), born in the 1900s and female (1), year 92, then 6 digits.
CCCD = "038192004217"
PHONE = "0987654321"
# The registered patient's page, for a person to look at: /tmp/benhan-patient.png.
SCREENSHOT = Path(tempfile.gettempdir()) / "benhan-patient.png"


def test_first_visit(page, make_staff, khoa_kham, khoa_noi, doctor, tr, label):
    clerk = make_staff("le_tan", Role.RECEPTIONIST, [khoa_kham], full_name="Hồ Thị Ngọc")

    # --- Sign in through the real form --------------------------------------------
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    expect(page.locator("html")).to_have_attribute("lang", "vi")
    username = page.get_by_label(label("Username"))
    expect(username).to_be_focused()  # autofocus: the clerk can type at once
    username.fill(clerk.username)
    page.get_by_label(label("Password")).fill(PASSWORD)
    page.get_by_role("button", name=tr("Sign in"), exact=True).click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator("header .who")).to_contain_text(clerk.full_name)

    # --- Register the patient --------------------------------------------------------
    page.get_by_role("navigation").get_by_role("link", name=tr("Register"), exact=True).click()
    expect(page).to_have_url(re.compile(r"/patients/new/$"))
    assert assert_fields_labelled(page) >= 15
    page.get_by_label(label("Full name")).fill(NAME)
    page.get_by_label(label("Date of birth")).fill(BIRTH)
    page.get_by_role("radio", name=tr(Sex.FEMALE.label), exact=True).check()
    page.get_by_label(label("Citizen ID (CCCD)")).fill(CCCD)
    page.get_by_label(label("Phone")).fill(PHONE)
    page.get_by_role("button", name=tr("Register"), exact=True).click()

    expect(page).to_have_url(re.compile(r"/patients/\d+/$"))
    patient = Patient.objects.get(cccd=CCCD)
    assert page.url.endswith(f"/patients/{patient.pk}/")
    assert (patient.full_name, patient.birth_year, patient.sex) == (NAME, 1992, "F")
    expect(page.locator("ul.messages[role=status]")).to_contain_text(
        tr("Registered %(name)s, MRN %(mrn)s.", name=NAME, mrn=patient.mrn)
    )
    expect(page.get_by_role("heading", level=1)).to_have_text(NAME)

    # --- Find her by the unaccented name, as the clerk types -------------------------
    page.get_by_role("navigation").get_by_role("link", name=tr("Patients"), exact=True).click()
    expect(page).to_have_url(re.compile(r"/patients/$"))
    search = page.get_by_label(tr("Search patients"), exact=True)
    expect(search).to_be_focused()
    # A marker that a full page load would wipe: proves no form submission happened.
    page.evaluate("() => { window.__sameDocument = true; }")
    search.press_sequentially("dang thi anh", delay=40)  # no Enter
    result = page.locator("#results").get_by_role("link", name=NAME, exact=True)
    expect(result).to_be_visible()
    assert page.evaluate("() => window.__sameDocument === true"), "the search reloaded the page"
    # hx-push-url: the address can be bookmarked or shared, and Back works.
    expect(page).to_have_url(re.compile(r"/patients/\?q=dang(\+|%20)thi(\+|%20)anh$"))
    expect(page.locator("#results tbody tr")).to_have_count(1)
    expect(page.locator("#results tbody tr")).to_contain_text(patient.mrn)

    # --- Open the patient, then an outpatient visit ----------------------------------------
    result.click()
    expect(page).to_have_url(re.compile(rf"/patients/{patient.pk}/$"))
    page.get_by_role("link", name=tr("Open a visit"), exact=True).click()
    expect(page).to_have_url(re.compile(rf"/encounters/new/{patient.pk}/\?kind=outpatient$"))
    assert assert_fields_labelled(page) == 5
    expect(page.get_by_label(label("Kind"))).to_have_value(EncounterKind.OUTPATIENT)
    expect(page.get_by_label(label("Start time"))).not_to_have_value("")
    page.get_by_label(label("Department")).select_option(label=khoa_noi.name)
    page.get_by_label(label("Attending doctor")).select_option(
        label=f"{doctor.title} {doctor.full_name}"
    )
    page.get_by_label(label("Reason for visit / admission")).fill("Ho, sốt nhẹ hai ngày")
    page.get_by_role("button", name=tr("Open"), exact=True).click()

    # A receptionist goes back to the patient's page, with the visit listed.
    expect(page).to_have_url(re.compile(rf"/patients/{patient.pk}/$"))
    kind = tr(EncounterKind.OUTPATIENT.label)
    expect(page.locator("ul.messages[role=status]")).to_contain_text(
        tr("%(kind)s opened in %(dept)s.", kind=kind, dept=khoa_noi.name)
    )
    visit_row = page.locator("table tbody tr").filter(has_text=khoa_noi.name)
    expect(visit_row).to_contain_text(kind)
    encounter = Encounter.objects.get(patient=patient)
    assert (encounter.kind, encounter.department_id, encounter.attending_id) == (
        EncounterKind.OUTPATIENT,
        khoa_noi.pk,
        doctor.pk,
    )
    assert encounter.reason == "Ho, sốt nhẹ hai ngày"
    page.screenshot(path=SCREENSHOT, full_page=True)

    # --- Sign out --------------------------------------------------------------------------
    page.get_by_role("button", name=tr("Sign out"), exact=True).click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    expect(page.get_by_label(label("Username"))).to_be_visible()
    page.goto(f"/patients/{patient.pk}/")  # the session is really over
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))

    assert page.watch.problems() == []
