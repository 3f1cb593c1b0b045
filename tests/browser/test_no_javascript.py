"""The registry without JavaScript.

An old or locked-down browser still signs in, searches (the search box submits as a
plain GET and the page shows the results), opens the patient and opens a visit.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from benhan.accounts.models import Role
from benhan.encounters.models import Encounter

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_search_and_open_visit_without_javascript(
    page_without_js, make_staff, register_patient, khoa_kham, tr, label, sign_in
):
    page = page_without_js
    clerk = make_staff("le_tan", Role.RECEPTIONIST, [khoa_kham], full_name="Hồ Thị Ngọc")
    patient = register_patient(
        actor_user=clerk, full_name="Đặng Thị Ánh Nguyệt", birth_year=1992, sex="F"
    )

    sign_in(page, clerk)
    page.goto("/patients/")
    search = page.get_by_label(tr("Search patients"), exact=True)
    search.fill("dang thi anh")
    search.press("Enter")  # no htmx: the form submits as a GET and the page reloads
    expect(page).to_have_url(re.compile(r"/patients/\?q=dang\+thi\+anh$"))
    expect(search).to_have_value("dang thi anh")
    result = page.locator("#results").get_by_role("link", name=patient.full_name, exact=True)
    expect(result).to_be_visible()

    result.click()
    expect(page).to_have_url(re.compile(rf"/patients/{patient.pk}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(patient.full_name)
    page.get_by_role("link", name=tr("Open a visit"), exact=True).click()
    page.get_by_label(label("Reason for visit / admission")).fill("Khám sức khỏe định kỳ")
    page.get_by_role("button", name=tr("Open"), exact=True).click()
    expect(page).to_have_url(re.compile(rf"/patients/{patient.pk}/$"))
    expect(page.locator("ul.messages")).to_contain_text(khoa_kham.name)
    assert Encounter.objects.filter(patient=patient, department=khoa_kham).count() == 1

    page.get_by_role("button", name=tr("Sign out"), exact=True).click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    assert page.watch.problems() == []
