"""Checks shared by the browser tests."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

# Every browser test's staff sign in with this password (make_staff).
PASSWORD = "Đăng-nhập-2025!"

# Form controls a person can reach: everything but hidden inputs.
CONTROLS = "main input:not([type=hidden]), main select, main textarea"


def assert_fields_labelled(page: Page) -> int:
    """Every visible control in <main> has an accessible name (a <label>, aria-label…).

    Returns how many controls were checked, so a caller can tell the check was not
    vacuous.
    """
    controls = page.locator(CONTROLS).all()
    for control in controls:
        expect(control).to_have_accessible_name(re.compile(r"\S"))
    return len(controls)


def focused(page: Page) -> str:
    """A short description of the focused element, for failure messages."""
    return page.evaluate(
        """() => {
            const el = document.activeElement;
            if (!el || el === document.body) return "<body>";
            const id = el.id ? "#" + el.id : "";
            const text = (el.innerText || el.value || el.name || "").trim().slice(0, 40);
            return `<${el.tagName.toLowerCase()}${id}> ${text}`;
        }"""
    )


def tab_to(page: Page, target: Locator, max_presses: int = 60, *, backwards=False) -> int:
    """Press Tab until `target` has the focus; fail if it never does.

    Also checks that the focused element shows a focus indicator (an outline or a
    box shadow), since a keyboard user has to see where they are. Returns the number
    of presses.
    """
    key = "Shift+Tab" if backwards else "Tab"
    for presses in range(1, max_presses + 1):
        page.keyboard.press(key)
        if target.evaluate("el => el === document.activeElement"):
            assert_focus_visible(page)
            return presses
    raise AssertionError(
        f"{target} was not reached with {max_presses} presses of {key}; "
        f"the focus ended on {focused(page)}"
    )


def assert_focus_visible(page: Page) -> None:
    style = page.evaluate(
        """() => {
            const s = getComputedStyle(document.activeElement);
            return {outline: s.outlineStyle, width: s.outlineWidth, shadow: s.boxShadow};
        }"""
    )
    visible = (style["outline"] != "none" and style["width"] != "0px") or (
        style["shadow"] not in ("", "none")
    )
    assert visible, f"no visible focus indicator on {focused(page)}: {style}"
