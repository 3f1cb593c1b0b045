"""benhan.scans.processing: phone photos → A4 JPEG pages → PDF, and uploaded-PDF checks.

Plain pytest, no database. The photos are generated (tests/scans/__init__.py): a text page
on a desk, unevenly lit, with sensor noise and EXIF (orientation, camera, GPS).
"""

from __future__ import annotations

import io
import os
import struct
import zlib

import pytest
from PIL import Image, ImageChops, ImageOps
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PdfFileWriter

from benhan.scans import processing
from benhan.scans.processing import (
    MAX_PIXELS,
    ScanError,
    ScanOptions,
    a4_pixels,
    build_pdf,
    check_pdf_upload,
    image_to_page,
    process,
)

from . import page_photo

META = {
    "title": "Giấy cam kết chấp thuận phẫu thuật",
    "author": "Trung tâm Y tế huyện Cao Lãnh",
    "converted_by": "Trần Văn Bình",
    "converted_at": "2026-03-14T09:30:00+07:00",
}
GREY = ScanOptions()
LIMIT = 150_000  # bytes per A4 text page (issue 4)


@pytest.fixture(scope="module")
def upright_12mp() -> bytes:
    return page_photo(3000, 4000)


@pytest.fixture(scope="module")
def rotated_12mp() -> bytes:
    return page_photo(3000, 4000, orientation=6)


def ink_bbox(jpeg: bytes) -> tuple[int, int, int, int]:
    im = Image.open(io.BytesIO(jpeg)).convert("L")
    return ImageOps.invert(im).point(lambda v: 255 if v > 128 else 0).getbbox()


# --- Photos → pages ------------------------------------------------------------------


def test_exif_rotated_photo_comes_out_upright(upright_12mp, rotated_12mp):
    stored = Image.open(io.BytesIO(rotated_12mp))
    assert stored.size == (4000, 3000)  # lying on its side, as the sensor saw it
    assert stored.getexif()[0x0112] == 6
    jpeg, info = image_to_page(rotated_12mp, GREY)
    assert info["rotated"] is True and info["exif_orientation"] == 6
    assert (info["orig_width"], info["orig_height"], info["orig_format"]) == (4000, 3000, "JPEG")
    w = a4_pixels(200)[0]
    assert (info["width"], info["height"]) == (w, round(w * 4000 / 3000))  # 1654 × 2205
    assert Image.open(io.BytesIO(jpeg)).size == (info["width"], info["height"])
    # The text block starts in the top third, behind a left margin, and its first line
    # (the heading) reaches further right than it is from the left edge.
    left, top, right, _ = ink_bbox(jpeg)
    assert 0.08 * w < left < 0.2 * w
    assert 0.05 * info["height"] < top < 0.33 * info["height"]
    assert right - left > 0.45 * w
    # Same result as the same page photographed without rotation.
    plain, _ = image_to_page(upright_12mp, GREY)
    a = Image.open(io.BytesIO(jpeg)).reduce(8)
    b = Image.open(io.BytesIO(plain)).reduce(8)
    diff = ImageChops.difference(a, b).histogram()
    assert sum(v * n for v, n in enumerate(diff)) / sum(diff) < 4


@pytest.mark.parametrize("orientation", [3, 8])
def test_other_orientations(orientation):
    jpeg, info = image_to_page(page_photo(900, 1200, orientation=orientation), GREY)
    assert info["height"] > info["width"]
    left, top, _, _ = ink_bbox(jpeg)
    assert left < 0.2 * info["width"] and top < 0.33 * info["height"]


def test_output_is_a4_at_dpi_and_never_upscaled():
    _, info = image_to_page(page_photo(3000, 4000, quality=80), ScanOptions(dpi=150))
    assert info["width"] <= a4_pixels(150)[0] and info["height"] <= a4_pixels(150)[1]
    _, small = image_to_page(page_photo(600, 800), GREY)
    assert (small["width"], small["height"]) == (600, 800)
    # A landscape page fits landscape A4.
    _, wide = image_to_page(page_photo(4000, 3000, lines=20), GREY)
    assert (wide["width"], wide["height"]) == (2205, 1654)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_png_and_webp(fmt):
    data = page_photo(1200, 1600, fmt=fmt, quality=85)
    assert processing.sniff(data) == fmt
    jpeg, info = image_to_page(data, GREY)
    assert info["orig_format"] == fmt and jpeg[:3] == b"\xff\xd8\xff"
    assert Image.open(io.BytesIO(jpeg)).mode == "L"


def test_png_with_alpha_is_put_on_white():
    im = Image.new("RGBA", (400, 600), (0, 0, 0, 0))
    out = io.BytesIO()
    im.save(out, "PNG")
    jpeg, _ = image_to_page(out.getvalue(), GREY)
    assert Image.open(io.BytesIO(jpeg)).getextrema()[0] > 240


def test_colour_mode(upright_12mp):
    jpeg, info = image_to_page(upright_12mp, ScanOptions(colour=True))
    page = Image.open(io.BytesIO(jpeg))
    assert page.mode == "RGB" and info["mode"] == "RGB"
    # 4:2:0 chroma subsampling
    assert page.layer[0][1:3] == (2, 2) and page.layer[1][1:3] == (1, 1)
    # The blue signature keeps its colour.
    r, _, b = page.convert("RGB").split()
    bluish = ImageChops.subtract(b, r).point(lambda v: 255 if v > 60 else 0)
    assert bluish.getbbox() is not None


def test_output_has_no_exif_or_gps(rotated_12mp):
    assert b"GPS" in Image.open(io.BytesIO(rotated_12mp)).info["exif"] or (
        Image.open(io.BytesIO(rotated_12mp)).getexif().get_ifd(0x8825)
    )
    for options in (GREY, ScanOptions(colour=True)):
        jpeg, _ = image_to_page(rotated_12mp, options)
        page = Image.open(io.BytesIO(jpeg))
        assert "exif" not in page.info and not page.getexif()
        assert "icc_profile" not in page.info
        assert b"Exif\x00\x00" not in jpeg and b"Galaxy" not in jpeg
        assert page.info.get("progressive") or page.info.get("progression")
        assert page.info["dpi"] == (200, 200)


def test_text_page_is_within_the_storage_target(upright_12mp):
    assert len(upright_12mp) > 3_000_000  # a phone photo: 3–5 MB
    jpeg, info = image_to_page(upright_12mp, GREY)
    assert info["bytes"] == len(jpeg) <= LIMIT
    # A typical form page (fewer lines) in colour as well.
    form = page_photo(3000, 4000, lines=25, seed=3)
    assert image_to_page(form, GREY)[1]["bytes"] <= LIMIT
    assert image_to_page(form, ScanOptions(colour=True))[1]["bytes"] <= LIMIT


def test_explicit_quality():
    data = page_photo(1200, 1600)
    low = image_to_page(data, ScanOptions(quality=20))[1]
    high = image_to_page(data, ScanOptions(quality=90))[1]
    assert low["quality"] == 20 and high["bytes"] > low["bytes"]
    with pytest.raises(ValueError):
        ScanOptions(quality=120)


def test_deskew_levels_a_tilted_page():
    photo = Image.open(io.BytesIO(page_photo(1500, 2000, lines=30, noise=4)))
    tilted = photo.rotate(-3, resample=Image.Resampling.BICUBIC, fillcolor=(190, 190, 185))
    out = io.BytesIO()
    tilted.save(out, "JPEG", quality=90)
    _, info = image_to_page(out.getvalue(), ScanOptions(deskew=True))
    assert info["deskew_angle"] == pytest.approx(3, abs=0.4)
    _, straight = image_to_page(page_photo(1500, 2000, lines=30), ScanOptions(deskew=True))
    assert abs(straight["deskew_angle"]) <= 0.2


# --- Bad input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\n1 0 obj<<>>endobj\n",
        os.urandom(4096),
        b"GIF89a" + bytes(100),
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    ],
    ids=["pdf", "random", "gif", "svg"],
)
def test_non_images_are_refused(data):
    with pytest.raises(ScanError) as e:
        image_to_page(data, GREY)
    assert e.value.code == "not_image"
    assert e.value.message.startswith("Tệp không phải là ảnh")
    assert "Not an image" in e.value.message


def test_empty():
    with pytest.raises(ScanError, match="Chưa có trang") as e:
        image_to_page(b"", GREY)
    assert e.value.code == "empty"
    with pytest.raises(ScanError):
        process([], GREY, **META)


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width × height but holds almost nothing (a few hundred bytes)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("size", [(50000, 50000), (8000, 5626)], ids=["2.5GP", "45MP"])
def test_decompression_bombs_are_refused_before_decoding(size, monkeypatch):
    data = png_header(*size)
    assert len(data) < 1000 and size[0] * size[1] > MAX_PIXELS

    def no_load(*args, **kwargs):
        raise AssertionError("decoded a bomb")

    monkeypatch.setattr(processing, "_decode", no_load)
    with pytest.raises(ScanError) as e:
        image_to_page(data, GREY)
    assert e.value.code == "too_many_pixels"
    assert "40 megapixel" in e.value.message


def test_jpeg_bomb_header():
    """A JPEG whose SOF claims 30000 × 30000."""
    small = io.BytesIO()
    Image.new("L", (16, 16), 255).save(small, "JPEG")
    data = bytearray(small.getvalue())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 30000, 30000)
    with pytest.raises(ScanError) as e:
        image_to_page(bytes(data), GREY)
    assert e.value.code == "too_many_pixels"


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_truncated_jpeg_is_refused(keep):
    data = page_photo(1200, 1600)
    with pytest.raises(ScanError) as e:
        image_to_page(data[: int(len(data) * keep)], GREY)
    assert e.value.code == "corrupt"
    assert "hỏng" in e.value.message and "damaged" in e.value.message


def test_garbage_after_jpeg_header_is_corrupt():
    with pytest.raises(ScanError) as e:
        image_to_page(b"\xff\xd8\xff\xe0" + os.urandom(2000), GREY)
    assert e.value.code == "corrupt"


def heic_photo() -> bytes:
    im = Image.open(io.BytesIO(page_photo(900, 1200, quality=90)))
    out = io.BytesIO()
    im.save(out, format="HEIF", quality=80)
    return out.getvalue()


@pytest.mark.skipif(not processing.HEIF_SUPPORTED, reason="pillow-heif not installed")
def test_heic_converts():
    data = heic_photo()
    assert data[4:12] == b"ftypheic"
    jpeg, info = image_to_page(data, GREY)
    assert info["orig_format"] == "HEIF" and (info["width"], info["height"]) == (900, 1200)
    left, top, _, _ = ink_bbox(jpeg)
    assert left < 0.2 * info["width"] and top < 0.33 * info["height"]


def test_heic_refused_clearly_without_pillow_heif(monkeypatch):
    data = heic_photo() if processing.HEIF_SUPPORTED else b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"
    monkeypatch.setattr(processing, "HEIF_SUPPORTED", False)
    with pytest.raises(ScanError) as e:
        image_to_page(data, GREY)
    assert e.value.code == "heic_unsupported"
    assert "HEIC" in e.value.message_vi and "JPEG" in e.value.message_en


# --- The upload → PDF ----------------------------------------------------------------


def test_process_builds_an_a4_pdf_with_metadata(rotated_12mp):
    uploads = [rotated_12mp, page_photo(1200, 1600, fmt="PNG"), page_photo(4000, 3000, lines=20)]
    pdf, infos = process(uploads, GREY, **META)
    assert [i["page"] for i in infos] == [1, 2, 3]
    reader = PdfFileReader(io.BytesIO(pdf))
    pages = [reader.find_page_for_modification(i)[0].get_object() for i in range(3)]
    assert len(pages) == 3
    sizes = [[round(float(x)) for x in p["/MediaBox"]] for p in pages]
    assert sizes[:2] == [[0, 0, 595, 842]] * 2
    assert sizes[2] == [0, 0, 842, 595]  # the landscape photo on landscape A4
    # Our JPEGs are embedded as they are (DCTDecode, same bytes).
    first = pages[0]["/Resources"]["/XObject"]
    (image,) = [v.get_object() for v in first.values()]
    assert image["/Filter"] == "/DCTDecode"
    assert image.encoded_data == image_to_page(rotated_12mp, GREY)[0]
    info = reader.trailer_view["/Info"]
    assert info["/Title"] == META["title"]
    assert info["/Author"] == META["author"]
    assert info["/Producer"] == "Bệnh Án"
    assert "Trần Văn Bình" in info["/Subject"] and "2026-03-14T09:30:00+07:00" in info["/Subject"]
    assert "converted from paper" in info["/Subject"]
    assert "converted from paper" in info["/Keywords"]
    assert info["/CreationDate"].startswith("D:20260314023000")
    assert len(pdf) < sum(i["bytes"] for i in infos) + 5000
    check_pdf_upload(pdf)


def test_process_names_the_failing_page():
    good = page_photo(600, 800)
    with pytest.raises(ScanError) as e:
        process([good, good, good[:3000], b"junk"], GREY, **META)
    assert e.value.code == "corrupt" and e.value.page == 3
    assert e.value.message.startswith("Trang 3: ") and "(Page 3: " in e.value.message
    with pytest.raises(ScanError) as e:
        process([good, b"junk", good[:3000]], GREY, **META)
    assert e.value.code == "not_image" and e.value.page == 2


def test_too_many_pages(monkeypatch):
    monkeypatch.setattr(processing, "MAX_PAGES", 3)
    with pytest.raises(ScanError) as e:
        process([b"x"] * 4, GREY, **META)
    assert e.value.code == "too_many_pages" and "3" in e.value.message


def test_build_pdf_needs_pages():
    with pytest.raises(ScanError):
        build_pdf([], **META)


# --- Uploaded PDFs -------------------------------------------------------------------


def make_pdf(mutate=None, *, encrypt: bool = False) -> bytes:
    """A one-page PDF written by pyHanko, optionally changed by `mutate(writer, page)`."""
    w = PdfFileWriter()
    page = generic.DictionaryObject(
        {
            generic.pdf_name("/Type"): generic.pdf_name("/Page"),
            generic.pdf_name("/MediaBox"): generic.ArrayObject(
                [generic.NumberObject(n) for n in (0, 0, 595, 842)]
            ),
            generic.pdf_name("/Resources"): generic.DictionaryObject(),
        }
    )
    w.insert_page(page)
    if mutate:
        mutate(w, page)
    if encrypt:
        w.encrypt("owner-secret", "")
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def N(name: str) -> generic.NameObject:  # noqa: N802
    return generic.pdf_name(name)


def js_action():
    return generic.DictionaryObject(
        {N("/S"): N("/JavaScript"), N("/JS"): generic.TextStringObject("app.alert(1)")}
    )


def open_action_js(w, page):
    w.root[N("/OpenAction")] = w.add_object(js_action())


def names_js(w, page):
    tree = generic.DictionaryObject(
        {
            N("/Names"): generic.ArrayObject(
                [generic.TextStringObject("x"), w.add_object(js_action())]
            )
        }
    )
    w.root[N("/Names")] = generic.DictionaryObject({N("/JavaScript"): w.add_object(tree)})


def embedded_file(w, page):
    stream = generic.StreamObject({N("/Type"): N("/EmbeddedFile")}, stream_data=b"MZ\x90\x00")
    spec = generic.DictionaryObject(
        {
            N("/Type"): N("/Filespec"),
            N("/F"): generic.TextStringObject("setup.exe"),
            N("/EF"): generic.DictionaryObject({N("/F"): w.add_object(stream)}),
        }
    )
    tree = generic.DictionaryObject(
        {N("/Names"): generic.ArrayObject([generic.TextStringObject("a"), w.add_object(spec)])}
    )
    w.root[N("/Names")] = generic.DictionaryObject({N("/EmbeddedFiles"): w.add_object(tree)})


def page_aa(w, page):
    page[N("/AA")] = generic.DictionaryObject({N("/O"): w.add_object(js_action())})


def launch_link(w, page):
    action = generic.DictionaryObject(
        {N("/S"): N("/Launch"), N("/F"): generic.TextStringObject("cmd.exe")}
    )
    annot = generic.DictionaryObject(
        {
            N("/Type"): N("/Annot"),
            N("/Subtype"): N("/Link"),
            N("/Rect"): generic.ArrayObject([generic.NumberObject(n) for n in (0, 0, 10, 10)]),
            N("/A"): action,
        }
    )
    page[N("/Annots")] = generic.ArrayObject([w.add_object(annot)])


def uri_link_and_goto(w, page):
    annot = generic.DictionaryObject(
        {
            N("/Type"): N("/Annot"),
            N("/Subtype"): N("/Link"),
            N("/Rect"): generic.ArrayObject([generic.NumberObject(n) for n in (0, 0, 10, 10)]),
            N("/A"): generic.DictionaryObject(
                {N("/S"): N("/URI"), N("/URI"): generic.TextStringObject("https://byt.gov.vn")}
            ),
        }
    )
    page[N("/Annots")] = generic.ArrayObject([w.add_object(annot)])
    w.root[N("/OpenAction")] = generic.ArrayObject([w.find_page_for_modification(0)[1], N("/Fit")])


@pytest.mark.parametrize(
    ("mutate", "encrypt", "reason"),
    [
        (open_action_js, False, "JavaScript"),
        (names_js, False, "JavaScript"),
        (embedded_file, False, "embedded files"),
        (page_aa, False, "AA"),
        (launch_link, False, "launch"),
        (None, True, "encrypted"),
    ],
    ids=["openaction-js", "names-js", "embedded-file", "page-aa", "launch", "encrypted"],
)
def test_dangerous_pdfs_are_refused(mutate, encrypt, reason):
    data = make_pdf(mutate, encrypt=encrypt)
    with pytest.raises(ScanError) as e:
        check_pdf_upload(data)
    assert e.value.code == "pdf_refused"
    assert e.value.message.startswith("Không nhận tệp PDF này")
    assert reason in e.value.message_en
    assert isinstance(e.value.detail["reason"], str)


def test_object_stream_is_searched_too():
    """An OpenAction whose JavaScript action sits compressed in an object stream."""

    def hidden_js(w, page):
        stream = w.prepare_object_stream()
        w.root[N("/OpenAction")] = w.add_object(js_action(), obj_stream=stream)

    data = make_pdf(hidden_js)
    assert b"app.alert" not in data and b"/JavaScript" not in data
    with pytest.raises(ScanError) as e:
        check_pdf_upload(data)
    assert "JavaScript" in e.value.message_en


def test_plain_pdfs_pass_unchanged():
    for data in (make_pdf(), make_pdf(uri_link_and_goto)):
        assert check_pdf_upload(data) is data


@pytest.mark.parametrize("data", [b"hello", b"%PDF-1.7\n garbage"], ids=["not-pdf", "broken"])
def test_unreadable_pdfs_are_refused(data):
    with pytest.raises(ScanError) as e:
        check_pdf_upload(data)
    assert e.value.code == "pdf_refused"
