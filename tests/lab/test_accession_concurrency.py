"""Collection under real concurrency (PostgreSQL): eight benches collect at the same
instant, eight distinct, consecutive, valid accession numbers."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection
from test_mrn_concurrency import THREADS, run_at_once  # tests/: the same helper

from benhan.audit.chain import Actor
from benhan.lab import actions
from benhan.lab.accession import is_valid

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="concurrency needs PostgreSQL: run with BENHAN_DB=postgres",
    ),
    pytest.mark.django_db(transaction=True),
]


def test_concurrent_collections_get_distinct_accession_numbers(encounter, doctor, lab_tech,
                                                               catalogue):  # fmt: skip
    orders = [actions.do_order(Actor(doctor), encounter, [catalogue["GLU"]])
              for _ in range(THREADS)]  # fmt: skip
    results = run_at_once(THREADS, lambda i: actions.do_collect(Actor(lab_tech), orders[i]))
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors
    accessions = sorted(s.accession for specimens in results for s in specimens)
    assert len(set(accessions)) == THREADS and all(is_valid(a) for a in accessions)
    assert [int(a[6:10]) for a in accessions] == list(range(1, THREADS + 1))
    call_command("audit", "verify")
