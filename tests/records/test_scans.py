"""Paper filed into a record through HTTP: photos become one PDF; bad files are refused
with a clear message and nothing half-filed; a resent upload is filed once."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from scans import page_photo  # tests/scans: generated photos of text pages

from benhan.audit.models import AuditEvent
from benhan.records.models import ScannedDocument
from benhan.records.storage import default_store


@pytest.fixture(autouse=True)
def _documents_dir(settings, tmp_path):
    settings.DOCUMENTS_DIR = tmp_path / "documents"


def _post(client, encounter, files, **fields):
    data = {"kind": "referral", "title": "Giấy chuyển tuyến", "document_date": "20/11/2026",
            "paper_location": "Hộp 12, kệ B", "upload_key": "k1", **fields}  # fmt: skip
    data["files"] = files
    return client.post(reverse("records:file_scan", args=[encounter.pk]), data)


def _photo(name="p.jpg", **kw):
    return SimpleUploadedFile(name, page_photo(1200, 1600, **kw), content_type="image/jpeg")


def test_it_files_photos_as_one_pdf(client_for, nurse, encounter):
    r = _post(client_for(nurse), encounter, [_photo("1.jpg"), _photo("2.jpg", orientation=6)])
    assert r.status_code == 302, r.content[:800]
    scan = ScannedDocument.objects.get()
    assert (scan.pages, scan.kind, scan.paper_location) == (2, "referral", "Hộp 12, kệ B")
    pdf = default_store().get(scan.sha256)
    assert pdf[:5] == b"%PDF-"
    assert len(scan.originals) == 2  # the photos as sent are kept too
    assert AuditEvent.objects.filter(action="scan.file", patient=encounter.patient).exists()
    r = client_for(nurse).get(reverse("records:scan_pdf", args=[scan.pk]))
    assert r.status_code == 200 and r["Content-Type"] == "application/pdf"


def test_it_files_a_resent_upload_once(client_for, nurse, encounter):
    client = client_for(nurse)
    _post(client, encounter, [_photo()])
    _post(client, encounter, [_photo()])
    assert ScannedDocument.objects.count() == 1


@pytest.mark.parametrize(
    ("payload", "name"),
    [
        (b"MZ\x90\x00 not an image at all", "virus.exe"),
        (page_photo(600, 800)[:3000], "cut.jpg"),  # truncated JPEG
        (
            b"%PDF-1.4\n1 0 obj<</Type/Catalog/OpenAction"
            b"<</S/JavaScript/JS(app.alert(1))>>>>endobj\n"
            b"trailer<</Root 1 0 R>>\n%%EOF",
            "script.pdf",
        ),
    ],
)
def test_it_refuses_bad_files_clearly_and_files_nothing(client_for, nurse, encounter, payload,
                                                         name):  # fmt: skip
    r = _post(client_for(nurse), encounter, [SimpleUploadedFile(name, payload)])
    assert r.status_code == 422
    assert r.context["form"].non_field_errors()
    assert not ScannedDocument.objects.exists()


def test_it_lists_and_filters_scans_by_type(client_for, nurse, encounter):
    client = client_for(nurse)
    _post(client, encounter, [_photo()])
    _post(client, encounter, [_photo()], kind="outside_result", title="Kết quả CT",
          upload_key="k2")  # fmt: skip
    url = reverse("records:encounter", args=[encounter.pk])
    assert len(client.get(url).context["scans"]) == 2
    only = client.get(url, {"kind": "outside_result"}).context["scans"]
    assert [s.title for s in only] == ["Kết quả CT"]


@pytest.mark.parametrize("who", ["receptionist", "admin", "outsider_doctor"])
def test_it_refuses_filing_to_those_without_access(who, client_for, encounter, request):
    r = _post(client_for(request.getfixturevalue(who)), encounter, [_photo()])
    assert r.status_code == 403
    assert not ScannedDocument.objects.exists()
