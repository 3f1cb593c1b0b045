"""The lab's tests: quick signing and a document store of their own. The fixtures are
in tests/lab/fixtures.py, shared with the browser tests."""

from __future__ import annotations

import pytest

from .fixtures import PIN  # noqa: F401 - the tests import it from here


@pytest.fixture(autouse=True)
def _lab_settings(settings, tmp_path):
    settings.SIGNING_PIN_KDF_COST = 10
    settings.TSA_URL = ""
    settings.DOCUMENTS_DIR = tmp_path / "documents"
