"""Filing the signed paper of a consent form from a phone, in a real browser.

The consent was printed with a QR code that opens /p/<token>. The nurse photographs the
two pages (12 MP JPEGs, one lying on its side with an EXIF orientation tag, as a phone
held upright stores it): static/js/upload.js turns them upright, downscales them to at
most 2400 px and sends them with a progress bar; the server files them as the next
version, "converted from paper", sealed. A dropped connection is retried with the same
upload key and files nothing twice. Without JavaScript the plain form does the same.
"""

from __future__ import annotations

import hashlib
import json
import re
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO

import pytest
from django.db import transaction
from PIL import Image
from playwright.sync_api import expect

from benhan.audit.chain import Actor
from benhan.audit.models import AuditEvent
from benhan.records import actions
from benhan.records.models import Document, DocumentStatus, DocumentVersion
from benhan.records.paper import paper_token, read_paper_token
from benhan.records.patient_sign import page_count
from benhan.records.storage import default_store
from benhan.signing import pki
from benhan.signing.verify import verify_pdf

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CONSENT = {"procedure": "Nội soi dạ dày", "risks": "Chảy máu, thủng (hiếm gặp)"}
WHERE = "Hộp 12, kệ B — phòng lưu trữ"
MAX_SIDE = 2400  # static/js/upload.js


@pytest.fixture(autouse=True)
def _signing_settings(settings, tmp_path):
    settings.SIGNING_PIN_KDF_COST = 10
    settings.TSA_URL = ""
    settings.DOCUMENTS_DIR = tmp_path / "documents"


@pytest.fixture(scope="module")
def photos() -> list[dict]:
    """Two 12 MP phone photos of the signed pages; the second stored on its side."""
    from scans import page_photo  # tests/scans/__init__.py (tests/ is on sys.path)

    return [
        {"name": "IMG_0001.jpg", "mimeType": "image/jpeg", "buffer": page_photo(3000, 4000)},
        {
            "name": "IMG_0002.jpg",
            "mimeType": "image/jpeg",
            "buffer": page_photo(3000, 4000, orientation=6, seed=2),
        },
    ]


@pytest.fixture(scope="module")
def small_photos() -> list[dict]:
    """Two smaller photos, for the tests that are not about downscaling."""
    from scans import page_photo

    return [
        {
            "name": f"trang-{i}.jpg",
            "mimeType": "image/jpeg",
            "buffer": page_photo(1200, 1600, seed=i),
        }
        for i in (1, 2)
    ]


@pytest.fixture
def consent(encounter, facility, doctor) -> Document:
    """A surgical consent, completed: printed, to be signed on paper."""
    pki.ensure_facility_pki(facility)
    actor = Actor(doctor, "127.0.0.1")
    with transaction.atomic():
        rec = actions.do_open_record(actor, encounter)
        doc = actions.do_create_document(actor, rec, "surgical_consent")
        doc = actions.do_save_draft(actor, doc, CONSENT)
    actions.do_complete(actor, doc)
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.COMPLETED
    return doc


def _off_the_loop(fn, *args):
    """fn(*args) in another thread: pyHanko's validation calls asyncio.run(), which
    cannot run on this thread while Playwright's sync API keeps its loop running here."""
    from django.db import connection

    def run():
        try:
            return fn(*args)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def _paper_path(doc: Document) -> str:
    return f"/p/{paper_token(doc.pk, doc.current_version().version)}"


def _fill_and_send(page, files, tr, label, input_id="#id_camera"):
    page.locator(input_id).set_input_files(files)
    page.get_by_label(label("Where the paper original is kept (box / shelf)")).fill(WHERE)
    page.get_by_role("button", name=tr("File and seal"), exact=True).click()


def _paper_versions(doc: Document):
    return DocumentVersion.objects.filter(document=doc, source="paper")


def _expect_filed(page, doc, nurse, tr):
    """The document page, as the browser lands on it after filing."""
    expect(page).to_have_url(re.compile(rf"/records/documents/{doc.pk}/$"))
    expect(page.locator("ul.messages[role=status]")).to_contain_text(
        tr("The signed paper is filed and sealed.")
    )
    expect(page.locator("h2 .tag")).to_have_text(tr(DocumentStatus.SEALED.label))
    converted = tr(
        "Converted from paper by %(who)s, %(when)s; paper kept at: %(where)s",
        who=nurse.full_name,
        when="@",
        where=WHERE,
    )
    before, after = converted.split("@")
    expect(page.locator("main table")).to_contain_text(before)
    expect(page.locator("main table")).to_contain_text(after)


def _jpeg_size(data: bytes) -> tuple[int, int, int | None]:
    with Image.open(BytesIO(data)) as im:
        assert im.format == "JPEG"
        return (*im.size, im.getexif().get(0x0112))


def test_photos_are_downscaled_in_the_browser_with_a_progress_bar(
    page, consent, nurse, password, photos, sign_in, tr, label
):
    sign_in(page, nurse, password)
    page.goto(f"/records/documents/{consent.pk}/")
    link = page.get_by_role("link", name=tr("File the signed paper"), exact=True)
    # The token's timestamp may differ by a second from one made here: compare what it
    # names (document and version), which is what matters.
    href = link.get_attribute("href")
    assert read_paper_token(href.rsplit("/", 1)[1]) == read_paper_token(
        _paper_path(consent).rsplit("/", 1)[1]
    )
    link.click()
    expect(page).to_have_url(re.compile(r"/p/[^/]+$"))
    expect(
        page.get_by_role("heading", name=tr("File the signed paper"), exact=True)
    ).to_be_visible()
    key = page.locator("input[name=upload_key]").input_value()
    assert len(key) >= 16

    # Hold the upload on its way, to see the progress bar while it is sent.
    held, sent = [], []

    def hold(route):
        if route.request.method != "POST":
            route.continue_()
            return
        sent.append(route.request)
        held.append(route)

    page.route(re.compile(r"/p/[^/]+$"), hold)
    progress = page.locator("progress[data-upload-progress]")
    expect(progress).to_be_hidden()
    _fill_and_send(page, photos, tr, label)
    expect(progress).to_be_visible(timeout=30_000)  # after the photos are downscaled
    expect(page.locator("[data-upload-status]")).to_contain_text(
        # The translate tag doubles the % of its msgid.
        tr("Sending… {p}%%").split("{p}")[0].strip()
    )
    expect(page.get_by_role("button", name=tr("File and seal"), exact=True)).to_be_disabled()
    assert len(sent) == 1 and len(held) == 1
    request = sent[0]
    assert request.headers.get("x-benhan-upload") == "1"
    body = request.post_data_buffer
    originals = sum(len(p["buffer"]) for p in photos)
    assert body, "Chromium reported no request body"
    assert len(body) < originals / 3, (len(body), originals)
    assert key.encode() in body
    parts = re.findall(rb'name="files"; filename="([^"]+)"\r\nContent-Type: ([^\r]+)', body)
    assert parts == [(b"IMG_0001.jpg", b"image/jpeg"), (b"IMG_0002.jpg", b"image/jpeg")]
    held[0].continue_()

    _expect_filed(page, consent, nurse, tr)
    (version,) = _paper_versions(consent)
    assert version.upload_key == key
    assert version.paper_location == WHERE and version.converted_by == nurse
    # What the server received: upright JPEGs at most 2400 px, much smaller than sent.
    store = default_store()
    assert [o["name"] for o in version.originals] == ["IMG_0001.jpg", "IMG_0002.jpg"]
    sizes = [_jpeg_size(store.get(o["sha256"])) for o in version.originals]
    for width, height, orientation in sizes:
        assert max(width, height) <= MAX_SIDE
        assert orientation in (None, 1)  # turned upright by the browser, tag dropped
    # Both portrait: the one stored on its side (4000 × 3000 pixels + tag 6) was turned.
    assert _jpeg_size(photos[1]["buffer"]) == (4000, 3000, 6)
    assert [(w, h) for w, h, _ in sizes] == [(1800, 2400), (1800, 2400)]
    assert sum(o["size"] for o in version.originals) < originals / 3
    consent.refresh_from_db()
    assert consent.status == DocumentStatus.SEALED
    pdf = store.get(version.current_sha256)
    assert page_count(pdf) == 2
    assert page.watch.problems() == []
    assert page.watch.csp_violations() == []
    report = _off_the_loop(verify_pdf, pdf)
    assert report.ok and report.sealed, report


@pytest.mark.parametrize("lost", ["request", "reply"])
def test_a_dropped_connection_is_retried_and_files_once(
    page, consent, nurse, password, small_photos, sign_in, tr, label, lost
):
    """lost="request": the connection drops before the server sees the upload.
    lost="reply": the server files it, but the phone never hears back, and sends the
    same upload (same key) again: that is answered as the first time, not refused
    as "already sealed", and not filed twice."""
    sign_in(page, nurse, password)
    page.goto(_paper_path(consent))
    key = page.locator("input[name=upload_key]").input_value()
    posts, replies = [], []

    def flaky(route):
        if route.request.method != "POST":
            route.continue_()
            return
        posts.append(route.request)
        if len(posts) > 1:
            route.continue_()
            return
        if lost == "reply":
            reply = route.fetch()  # the server receives and files it...
            replies.append((reply.status, reply.text()))
        route.abort("connectionreset")  # ...and the browser sees the connection drop

    page.route(re.compile(r"/p/[^/]+$"), flaky)
    _fill_and_send(page, small_photos, tr, label)
    retrying = tr("Connection lost; retrying ({n} of {max})…").split("{n}")[0].strip()
    expect(page.locator("[data-upload-status]")).to_contain_text(retrying)
    _expect_filed(page, consent, nurse, tr)

    assert len(posts) == 2
    # The same files and the same key, resent (each send has its own multipart boundary).
    bodies = [r.post_data_buffer.replace(r.post_data_buffer[:60].split(b"\r\n")[0], b"--B")
              for r in posts]  # fmt: skip
    assert bodies[0] == bodies[1]
    assert f'name="upload_key"\r\n\r\n{key}\r\n'.encode() in bodies[0]
    if lost == "reply":
        assert len(replies) == 1 and replies[0][0] == 200, replies
        assert json.loads(replies[0][1]) == {"redirect": f"/records/documents/{consent.pk}/"}
    (version,) = _paper_versions(consent)
    assert version.upload_key == key
    assert DocumentVersion.objects.filter(document=consent).count() == 2  # printed + paper
    assert AuditEvent.objects.filter(action="document.file_paper").count() == 1
    # The reset connection is the only failed request.
    assert len(page.watch.failed_requests) == 1
    assert "ERR_CONNECTION_RESET" in page.watch.failed_requests[0]
    assert [p for p in page.watch.problems() if "ERR_CONNECTION_RESET" not in p] == []


def test_plain_form_without_javascript(
    page_without_js, consent, nurse, password, small_photos, sign_in, tr, label
):
    page = page_without_js
    sign_in(page, nurse, password)
    page.goto(f"/records/documents/{consent.pk}/")
    page.get_by_role("link", name=tr("File the signed paper"), exact=True).click()
    expect(page.locator("progress[data-upload-progress]")).to_be_hidden()
    _fill_and_send(page, small_photos, tr, label, input_id="#id_files")
    _expect_filed(page, consent, nurse, tr)

    (version,) = _paper_versions(consent)
    # The photos arrive as they were taken: nothing ran in the browser.
    sent = [hashlib.sha256(p["buffer"]).hexdigest() for p in small_photos]
    assert [o["sha256"] for o in version.originals] == sent
    consent.refresh_from_db()
    assert consent.status == DocumentStatus.SEALED
    assert page.watch.problems() == []
