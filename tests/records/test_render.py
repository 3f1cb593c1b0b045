"""PDF rendering with Typst (benhan/records/render.py and benhan/records/typst/)."""

from __future__ import annotations

import copy
import re
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from benhan.records import render as r

A4 = (595.28, 841.89)
INJECTIONS = [
    '#panic("x")',
    "$ x^2 $",
    "<script>alert(1)</script>",
    "*đậm* _nghiêng_ @ref",
    "\\ #{1+1}",
]


def run(*cmd: str, data: bytes) -> str:
    return subprocess.run(cmd, input=data, capture_output=True, check=True).stdout.decode()  # noqa: S603


def text_of(pdf: bytes) -> str:
    return run("pdftotext", "-layout", "-", "-", data=pdf)


def words_of(pdf: bytes) -> list[tuple[int, str, float, float, float, float]]:
    """(page, word, x1, y1, x2, y2) in PDF coordinates (origin bottom-left)."""
    html = run("pdftotext", "-bbox", "-", "-", data=pdf)
    root = ET.fromstring(  # noqa: S314 (our own pdftotext output)
        re.sub(r"<!DOCTYPE[^>]*>", "", html).replace('xmlns="http://www.w3.org/1999/xhtml"', "")
    )
    out = []
    for ix, page in enumerate(root.iter("page")):
        height = float(page.get("height"))
        for w in page.iter("word"):
            out.append(
                (
                    ix,
                    w.text or "",
                    float(w.get("xMin")),
                    height - float(w.get("yMax")),
                    float(w.get("xMax")),
                    height - float(w.get("yMin")),
                )
            )
    return out


def pages_of(pdf: bytes) -> int:
    return int(re.search(r"Pages:\s+(\d+)", run("pdfinfo", "-", data=pdf)).group(1))


@pytest.fixture(scope="module", params=r.TEMPLATES)
def rendered(request):
    data = r.sample(request.param)
    return request.param, data, r.render(request.param, data)


def test_every_template_renders(rendered):
    _, _, out = rendered
    assert out.pdf.startswith(b"%PDF-")
    assert out.pages == pages_of(out.pdf)
    assert 1 <= out.pages <= 3


def test_only_shipped_fonts_are_embedded(rendered):
    _, _, out = rendered
    lines = run("pdffonts", "-", data=out.pdf).splitlines()[2:]
    assert lines
    for line in lines:
        cols = line.split()
        assert re.fullmatch(r"[A-Z]{6}\+BenhAnSerif-(Regular|Bold|Italic|BoldItalic)", cols[0]), (
            line
        )
        assert cols[-5:-2] == ["yes", "yes", "yes"], line  # embedded, subset, unicode map


def test_text_marks_and_vietnamese(rendered):
    _, data, out = rendered
    text = " ".join(text_of(out.pdf).split())
    assert "Bản chuyển đổi từ hồ sơ bệnh án điện tử · Bệnh Án" in text
    assert "Mã tra cứu: K7Q2-9XPM" in text
    assert "http://127.0.0.1:8000/v/K7Q2-9XPM" in text
    assert f"Trang {out.pages}/{out.pages}" in text
    assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in text
    assert "Độc lập - Tự do - Hạnh phúc" in text
    assert "TRUNG TÂM Y TẾ KHU VỰC" in text and "YÊN HÒA" in text
    assert data["form"]["code"] in text
    assert "NGUYỄN THỊ HẰNG" in text
    title_words = data["form"]["title"].split()
    assert " ".join(title_words[:4]) in text


def test_qr_code_is_drawn(rendered):
    name, data, out = rendered
    svg = r.qr_svg(data["lookup"]["url"])
    assert svg.startswith("<svg") and "<path" in svg
    # Without the QR the PDF is different and smaller: the code is drawn on every page.
    no_qr = copy.deepcopy(data)
    no_qr["lookup"] = {"code": data["lookup"]["code"]}
    plain = r.render(name, no_qr).pdf
    assert len(plain) < len(out.pdf)


def test_signature_boxes(rendered):
    _, data, out = rendered
    slots = {s["slot"] for s in data["signatures"]}
    assert slots <= set(out.boxes)
    words = words_of(out.pdf)
    for slot, box in out.boxes.items():
        assert 0 <= box.page < out.pages
        assert 0 < box.x1 < box.x2 < A4[0] and 0 < box.y1 < box.y2 < A4[1], (slot, box)
        assert box.x2 - box.x1 >= 100 and box.y2 - box.y1 >= 55
        # No text inside the box (it is kept empty for the visible stamp).
        inside = [
            w
            for w in words
            if w[0] == box.page
            and w[2] < box.x2
            and w[4] > box.x1
            and w[3] < box.y2
            and w[5] > box.y1
        ]
        assert not inside, (slot, inside)
    # Boxes do not overlap each other.
    items = list(out.boxes.items())
    for i, (a, ba) in enumerate(items):
        for b, bb in items[i + 1 :]:
            if ba.page == bb.page:
                assert ba.x2 <= bb.x1 or bb.x2 <= ba.x1 or ba.y2 <= bb.y1 or bb.y2 <= ba.y1, (a, b)
    # The signer's printed name sits right under their box, the title right above it.
    for sig in data["signatures"]:
        box = out.boxes[sig["slot"]]
        last = sig["name"].split()[-1]
        below = [
            w
            for w in words
            if w[0] == box.page
            and w[1] == last
            and box.x1 <= w[2] <= box.x2
            and box.y1 - 25 < w[5] <= box.y1
        ]
        assert below, (sig, box)
        first = sig["title"].split()[0]
        above = [
            w
            for w in words
            if w[0] == box.page
            and w[1] == first
            and box.x1 - 30 <= w[2] <= box.x2
            and box.y2 <= w[3] < box.y2 + 60
        ]
        assert above, (sig, box)


@pytest.mark.parametrize("name", r.TEMPLATES)
def test_values_print_literally(name):
    data = r.sample(name)
    evil = " | ".join(INJECTIONS)
    data["patient"]["full_name"] = evil
    data["patient"]["address"] = evil
    data["fields"] = {k: (evil if isinstance(v, str) else v) for k, v in data["fields"].items()}
    data["fields"]["date"] = "25/11/2026"
    out = r.render(name, data)
    text = "".join(text_of(out.pdf).split())  # narrow columns wrap: compare without spaces
    for piece in [
        '#panic("x")',
        "$ x^2 $",
        "<script>alert(1)</script>",
        "*đậm* _nghiêng_ @ref",
        "\\ #{1+1}",
    ]:
        assert "".join(piece.split()) in text, piece


@pytest.mark.parametrize("name", r.TEMPLATES)
def test_missing_optional_fields_render_as_dots(name):
    data = r.sample(name)
    data["fields"] = {}
    data["patient"] = {"full_name": "Lò Văn Pả"}
    data["encounter"] = {}
    out = r.render(name, data)
    text = text_of(out.pdf)
    assert "LÒ VĂN PẢ" in text
    assert "........" in text
    assert "Ngày" in text


def test_minimal_data_renders():
    out = r.render("discharge_paper", {})
    assert out.pages == 1
    assert out.boxes == {}


def test_template_names_are_checked():
    with pytest.raises(r.RenderError):
        r.render("../settings", {})
    with pytest.raises(r.RenderError):
        r.render("no_such_form", {})
    assert r.render("discharge_paper.typ", r.sample("discharge_paper")).pages == 1


def test_render_is_deterministic():
    """Same data, same bytes — also across a change of second (Typst would otherwise
    stamp the current time as the PDF's creation date)."""
    data = r.sample("discharge_paper")
    first = r.render("discharge_paper", data).pdf
    time.sleep(1.05)
    assert first == r.render("discharge_paper", copy.deepcopy(data)).pdf
    assert b"/CreationDate" not in first


def test_long_content_flows_to_more_pages_with_boxes_on_the_last():
    data = r.sample("treatment_sheet")
    data["fields"]["entries"] = data["fields"]["entries"] * 8
    out = r.render("treatment_sheet", data)
    assert out.pages >= 2
    assert out.boxes["doctor"].page == out.pages - 1
    assert f"Trang {out.pages}/{out.pages}" in " ".join(text_of(out.pdf).split())


def test_stamp_print_copy():
    out = r.render("outpatient_record", r.sample("outpatient_record"))
    copy_ = r.stamp_print_copy(
        out.pdf, printed_at="25/11/2026 10:02", printed_by="Vũ Thị Mai #x $y$"
    )
    assert copy_.startswith(out.pdf)  # incremental update: the original bytes are kept
    assert pages_of(copy_) == out.pages
    text = " ".join(text_of(copy_).split())
    assert text.count("In lúc 25/11/2026 10:02 bởi Vũ Thị Mai #x $y$") == out.pages
    assert "Bản chuyển đổi từ hồ sơ bệnh án điện tử" in text
    # The print line sits in the strip below the footer, clear of other text.
    words = words_of(copy_)
    line = [w for w in words if w[1] == "lúc"]
    assert line and all(w[3] < 20 for w in line)
    fonts = run("pdffonts", "-", data=copy_)
    assert "BenhAnSerif-Italic" in fonts and "Helvetica" not in fonts
