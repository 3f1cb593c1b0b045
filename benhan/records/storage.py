"""Content-addressed storage for rendered and signed documents.

Objects are addressed by the SHA-256 of their bytes. Every read re-hashes what it read
and refuses to return bytes that do not match (``CorruptObject``), so a PDF changed on
disk is detected, reported and never served as valid. The database keeps metadata only.

``LocalStore`` keeps objects at ``root/ab/cd/abcd…`` (the full hex digest as file name),
written atomically (temporary file, fsync, rename, fsync of the directory) and made
read-only afterwards. An S3-compatible store can implement the same ``Store`` protocol.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol, runtime_checkable

_HEX64 = re.compile(r"[0-9a-f]{64}")


class StoreError(Exception):
    pass


class CorruptObject(StoreError):  # noqa: N818 (names fixed by the records API)
    """The stored bytes no longer match their SHA-256."""


class MissingObject(StoreError, KeyError):  # noqa: N818 (names fixed by the records API)
    """No object with that SHA-256 is stored."""


class InvalidAddress(StoreError, ValueError):  # noqa: N818 (names fixed by the records API)
    """Not a lowercase 64-digit hex SHA-256."""


@runtime_checkable
class Store(Protocol):
    def put(self, data: bytes) -> str:
        """Store ``data``; return its SHA-256 hex digest. Idempotent and atomic."""
        ...

    def get(self, sha256: str) -> bytes:
        """The bytes stored under ``sha256``, verified against it on every read."""
        ...

    def exists(self, sha256: str) -> bool: ...


def check_address(sha256: str) -> str:
    if not isinstance(sha256, str) or not _HEX64.fullmatch(sha256):
        raise InvalidAddress(f"not a SHA-256 hex digest: {sha256!r}")
    return sha256


class LocalStore:
    """A directory of content-addressed, read-only files."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def path(self, sha256: str) -> Path:
        check_address(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> str:
        data = bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists() and self._intact(target, digest):
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o444)
            # rename is atomic: concurrent writers of the same content each rename a
            # complete file over the name; a reader sees one of them, never a partial one.
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(target.parent)
        return digest

    def get(self, sha256: str) -> bytes:
        target = self.path(sha256)
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            raise MissingObject(sha256) from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise CorruptObject(f"{sha256}: stored bytes do not match their SHA-256 ({target})")
        return data

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def discard(self, sha256: str) -> bool:
        """Remove an object; True if it was there. Only for inputs that are not records
        themselves (the original photos of a filed scan, after their retention)."""
        try:
            self.path(sha256).unlink()
        except FileNotFoundError:
            return False
        return True

    @staticmethod
    def _intact(path: Path, digest: str) -> bool:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest() == digest


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def default_store() -> Store:
    """The configured store: ``settings.DOCUMENTS_DIR``, else ``BENHAN_DOCUMENTS_DIR``,
    else ``settings.DATA_DIR / "documents"``."""
    from django.conf import settings

    root = getattr(settings, "DOCUMENTS_DIR", None) or os.environ.get("BENHAN_DOCUMENTS_DIR")
    if not root:
        root = Path(settings.DATA_DIR) / "documents"
    return LocalStore(Path(root))
