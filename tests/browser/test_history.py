"""The Back button on the patient search.

The search box swaps results in through htmx and pushes each query into the
address bar (hx-push-url), and the same URL serves the whole page to a plain
request and only the results fragment to htmx. Back must always show the whole
page again, with the header, the menu and the search box.

The search view varies on the htmx headers and answers htmx's history-restore
request with the whole page; the htmx config refreshes on a history miss.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from benhan.accounts.models import Role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NAME = "Đặng Thị Ánh Nguyệt"


@pytest.fixture
def on_search_page(page, make_staff, register_patient, khoa_kham, sign_in):
    clerk = make_staff("le_tan", Role.RECEPTIONIST, [khoa_kham], full_name="Hồ Thị Ngọc")
    register_patient(actor_user=clerk, full_name=NAME, birth_year=1992, sex="F")
    sign_in(page, clerk)
    page.goto("/patients/")
    return page


def expect_whole_search_page(page, query: str) -> None:
    # Short waits: until the bug is fixed these run into them.
    expect(page.locator("header.top")).to_be_visible(timeout=2000)
    expect(page.locator("#q")).to_have_value(query, timeout=2000)
    expect(page.locator("#results").get_by_role("link", name=NAME, exact=True)).to_be_visible()


def test_back_from_a_patient_shows_the_search_page(on_search_page):
    page = on_search_page
    page.locator("#q").press_sequentially("dang thi anh", delay=20)
    page.locator("#results").get_by_role("link", name=NAME, exact=True).click()
    expect(page).to_have_url(re.compile(r"/patients/\d+/$"))
    page.go_back()
    expect(page).to_have_url(re.compile(r"/patients/\?q="))
    expect_whole_search_page(page, "dang thi anh")


def test_back_between_searches_shows_the_search_page(on_search_page):
    page = on_search_page
    search = page.locator("#q")
    search.press_sequentially("dang", delay=20)
    expect(page).to_have_url(re.compile(r"/patients/\?q=dang$"))
    search.press_sequentially(" thi", delay=20)
    expect(page).to_have_url(re.compile(r"/patients/\?q=dang(%20|\+)thi$"))
    page.go_back()
    expect(page).to_have_url(re.compile(r"/patients/\?q=dang$"))
    expect_whole_search_page(page, "dang")
