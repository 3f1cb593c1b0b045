"""The desk without a mouse.

Every step of a first visit (sign in, register, search, open the patient, open a
visit, sign out) is done with Tab, arrows, typing and Enter, and every control
reached shows a focus indicator.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from benhan.accounts.models import Role
from benhan.encounters.models import Encounter, EncounterKind
from benhan.patients.models import Patient

from .helpers import PASSWORD, tab_to

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NAME = "Lương Văn Đức"
CCCD = "001202001234"  # Hà Nội, born in the 2000s and male (2), year 02


def test_keyboard_only(page, make_staff, khoa_kham, khoa_noi, tr, label):
    clerk = make_staff("le_tan", Role.RECEPTIONIST, [khoa_kham], full_name="Hồ Thị Ngọc")
    keys = page.keyboard

    # Sign in: the username has the focus, Tab to the password, Enter submits.
    page.goto("/accounts/login/")
    expect(page.get_by_label(label("Username"))).to_be_focused()
    keys.type(clerk.username)
    keys.press("Tab")
    expect(page.get_by_label(label("Password"))).to_be_focused()
    keys.type(PASSWORD)
    keys.press("Enter")
    expect(page).to_have_url(re.compile(r"/$"))

    # The first Tab reaches the skip link, which becomes visible and jumps to <main>.
    keys.press("Tab")
    skip = page.get_by_role("link", name=tr("Skip to content"))
    expect(skip).to_be_focused()
    box = skip.bounding_box()
    assert box is not None and box["x"] >= 0, "the focused skip link stays off-screen"
    keys.press("Enter")
    expect(page).to_have_url(re.compile(r"/#main$"))
    keys.press("Tab")
    expect(page.locator("#home-q")).to_be_focused()  # the worklist's search box

    # Register a patient from the worklist.
    tab_to(page, page.locator("main").get_by_role("link", name=tr("Register a patient")))
    keys.press("Enter")
    expect(page).to_have_url(re.compile(r"/patients/new/$"))
    tab_to(page, page.get_by_label(label("Full name")))
    keys.type(NAME)
    keys.press("Tab")
    expect(page.get_by_label(label("Date of birth"))).to_be_focused()
    keys.type("2002")  # only the year is known
    keys.press("Tab")  # into the sex radio group, on its first radio (male)
    expect(page.locator("#id_sex_0")).to_be_focused()
    keys.press("Space")
    expect(page.locator("#id_sex_0")).to_be_checked()
    tab_to(page, page.get_by_label(label("Citizen ID (CCCD)")), max_presses=2)
    keys.type(CCCD)
    tab_to(page, page.get_by_role("button", name=tr("Register"), exact=True))
    keys.press("Enter")
    expect(page).to_have_url(re.compile(r"/patients/\d+/$"))
    patient = Patient.objects.get(cccd=CCCD)
    assert (patient.full_name, patient.birth_year, patient.sex) == (NAME, 2002, "M")

    # Back to the worklist through the main menu, and search from there.
    tab_to(page, page.get_by_role("navigation").get_by_role("link", name=tr("Worklist")))
    keys.press("Enter")
    expect(page).to_have_url(re.compile(r"/$"))
    tab_to(page, page.locator("#home-q"))
    keys.type("luong van duc")
    keys.press("Enter")
    expect(page).to_have_url(re.compile(r"/patients/\?q=luong\+van\+duc$"))
    result = page.locator("#results").get_by_role("link", name=NAME, exact=True)
    tab_to(page, result)
    keys.press("Enter")
    expect(page).to_have_url(re.compile(rf"/patients/{patient.pk}/$"))

    # Open an outpatient visit in Khoa Nội, choosing it with the arrow keys.
    tab_to(page, page.get_by_role("link", name=tr("Open a visit"), exact=True))
    keys.press("Enter")
    expect(page).to_have_url(re.compile(rf"/encounters/new/{patient.pk}/\?kind=outpatient$"))
    department = page.get_by_label(label("Department"))
    tab_to(page, department)
    expect(department).to_have_value(str(khoa_kham.pk))  # the clerk's own, preselected
    keys.press("ArrowDown")  # departments are sorted by name: Khám bệnh, then Nội
    expect(department).to_have_value(str(khoa_noi.pk))
    tab_to(page, page.get_by_label(label("Reason for visit / admission")), max_presses=2)
    keys.type("Đau bụng từ sáng")
    tab_to(page, page.get_by_role("button", name=tr("Open"), exact=True))
    keys.press("Enter")
    expect(page).to_have_url(re.compile(rf"/patients/{patient.pk}/$"))
    expect(page.locator("ul.messages")).to_contain_text(khoa_noi.name)
    encounter = Encounter.objects.get(patient=patient)
    assert (encounter.kind, encounter.department_id) == (EncounterKind.OUTPATIENT, khoa_noi.pk)

    # Sign out from the header.
    tab_to(page, page.get_by_role("button", name=tr("Sign out"), exact=True))
    keys.press("Enter")
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))

    assert page.watch.problems() == []
