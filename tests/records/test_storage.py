"""Content-addressed document storage (benhan/records/storage.py)."""

from __future__ import annotations

import hashlib
import os
import stat
import threading

import pytest

from benhan.records.storage import (
    CorruptObject,
    InvalidAddress,
    LocalStore,
    MissingObject,
    Store,
    default_store,
)

PDF = b"%PDF-1.7\n% Gi\xe1\xba\xa5y ra vi\xe1\xbb\x87n\n%%EOF\n"


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path / "documents")


def test_roundtrip_and_layout(store):
    digest = store.put(PDF)
    assert digest == hashlib.sha256(PDF).hexdigest()
    assert store.get(digest) == PDF
    assert store.exists(digest)
    path = store.root / digest[:2] / digest[2:4] / digest
    assert path.read_bytes() == PDF
    assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert isinstance(store, Store)


def test_put_is_idempotent(store):
    assert store.put(PDF) == store.put(PDF)
    files = [p for p in store.root.rglob("*") if p.is_file()]
    assert len(files) == 1  # no temporary files left behind


def test_changed_on_disk_is_detected(store):
    digest = store.put(PDF)
    path = store.path(digest)
    os.chmod(path, 0o644)
    path.write_bytes(PDF.replace(b"1.7", b"1.4"))
    with pytest.raises(CorruptObject):
        store.get(digest)
    # Putting the right bytes again repairs the object.
    assert store.put(PDF) == digest
    assert store.get(digest) == PDF


def test_truncated_file_is_detected(store):
    digest = store.put(PDF)
    path = store.path(digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"")
    with pytest.raises(CorruptObject):
        store.get(digest)


def test_missing(store):
    digest = hashlib.sha256(b"never stored").hexdigest()
    assert not store.exists(digest)
    with pytest.raises(MissingObject):
        store.get(digest)


def test_concurrent_puts_of_the_same_content(store):
    data = os.urandom(256 * 1024)
    results, errors = [], []

    def put():
        try:
            results.append(store.put(data))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert set(results) == {hashlib.sha256(data).hexdigest()}
    assert store.get(results[0]) == data
    assert [p.name for p in store.root.rglob("*") if p.is_file()] == [results[0]]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "../../etc/passwd",
        "ab/../../x",
        "A" * 64,  # uppercase refused: one spelling per object
        "g" * 64,
        "0" * 63,
        "0" * 65,
        "0" * 62 + "/x",
        "/" + "0" * 63,
        "0" * 64 + "\n",
        None,
    ],
)
def test_invalid_addresses_are_refused(store, bad):
    with pytest.raises(InvalidAddress):
        store.get(bad)
    with pytest.raises(InvalidAddress):
        store.exists(bad)


def test_default_store_uses_settings(settings, tmp_path):
    settings.DOCUMENTS_DIR = tmp_path / "docs"
    store = default_store()
    assert isinstance(store, LocalStore)
    assert store.root == tmp_path / "docs"


def test_default_store_under_data_dir(settings, tmp_path, monkeypatch):
    monkeypatch.delenv("BENHAN_DOCUMENTS_DIR", raising=False)
    if hasattr(settings, "DOCUMENTS_DIR"):
        del settings.DOCUMENTS_DIR
    settings.DATA_DIR = tmp_path
    assert default_store().root == tmp_path / "documents"
