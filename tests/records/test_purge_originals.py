"""`benhan records purge-originals`: the phone photos of filed paper go after their
keep period, once the converted PDF checks out; the PDF stays; shared photos stay."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from scans import page_photo  # tests/scans: generated photos of text pages

from benhan.audit.chain import Actor, verify
from benhan.audit.models import AuditEvent
from benhan.records import actions
from benhan.records.models import ScannedDocument
from benhan.records.storage import default_store


@pytest.fixture(autouse=True)
def _documents_dir(settings, tmp_path):
    settings.DOCUMENTS_DIR = tmp_path / "documents"


def _file(nurse, encounter, photos, key, days_ago):
    rec = actions.do_open_record(Actor(nurse), encounter)
    scan = actions.do_file_scan(
        Actor(nurse), rec, files=[(f"{i}.jpg", p) for i, p in enumerate(photos)],
        kind="referral", title="Giấy chuyển tuyến", upload_key=key,
    )  # fmt: skip
    ScannedDocument.objects.filter(pk=scan.pk).update(
        uploaded_at=timezone.now() - timedelta(days=days_ago)
    )
    return scan


def _purge(*args):
    out = StringIO()
    call_command("records", "purge-originals", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_old_originals_go_the_pdf_stays(nurse, encounter):
    shared = page_photo(900, 1200, seed=7)
    old = _file(nurse, encounter, [page_photo(900, 1200, seed=8), shared], "k-old", 40)
    recent = _file(nurse, encounter, [shared], "k-new", 2)
    store = default_store()
    originals = [o["sha256"] for o in old.originals]

    assert "would remove 1 original" in _purge("--dry-run")
    assert all(store.exists(s) for s in originals)

    assert "removed 1 original(s)" in _purge()
    old.refresh_from_db()
    assert not store.exists(originals[0])  # its own photo: gone
    assert store.exists(originals[1])  # also sent by the recent filing: kept
    # Marked purged: its own photo; the shared one waits until no recent filing needs it.
    assert [bool(o.get("purged_at")) for o in old.originals] == [True, False]
    assert store.get(old.sha256)[:5] == b"%PDF-"  # the converted PDF stays
    assert store.exists(recent.originals[0]["sha256"])
    event = AuditEvent.objects.get(action="scan.originals_purged")
    assert event.detail["removed"] == [originals[0]] and event.patient == encounter.patient
    assert verify()[1] == []
    assert "removed 0 original(s)" in _purge()  # nothing more to remove yet
    ScannedDocument.objects.filter(pk=recent.pk).update(
        uploaded_at=timezone.now() - timedelta(days=31)
    )
    assert "removed 1 original(s)" in _purge()  # now the shared photo goes too
    assert not store.exists(originals[1])


def test_a_damaged_pdf_keeps_its_originals(nurse, encounter, settings):
    scan = _file(nurse, encounter, [page_photo(900, 1200)], "k1", 40)
    path = default_store().path(scan.sha256)
    path.chmod(0o644)
    path.write_bytes(b"%PDF-1.4 damaged")
    with pytest.raises(CommandError):
        _purge()
    assert default_store().exists(scan.originals[0]["sha256"])


def test_zero_days_keeps_everything(nurse, encounter, settings):
    settings.SCAN_ORIGINALS_DAYS = 0
    scan = _file(nurse, encounter, [page_photo(900, 1200)], "k1", 400)
    assert "kept" in _purge()
    assert default_store().exists(scan.originals[0]["sha256"])
