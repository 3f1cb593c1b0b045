"""Registration under real concurrency (PostgreSQL): MRNs stay unique and a citizen ID
is registered once. SQLite serialises every writer on one database lock, so there is
no race to test there; its in-memory test database is not shared between threads
either."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, connections

from benhan.accounts.models import Counter
from benhan.audit.chain import Actor
from benhan.patients.actions import do_register_patient
from benhan.patients.models import Patient

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="concurrency needs PostgreSQL: run with BENHAN_DB=postgres",
    ),
    pytest.mark.django_db(transaction=True),
]

THREADS = 8


def run_at_once(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run fn(0..n-1) in n threads released together; return results or exceptions."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = fn(i)
        except Exception as e:  # the test inspects what each thread got
            results[i] = e
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "a registration hung"
    return results


def fields(i: int, **extra) -> dict:
    name = f"Bệnh Nhân Số {'ABCDEFGHIJ'[i]}"
    return {"full_name": name, "birth_year": 1980 + i, "sex": "M"} | extra


def test_it_gives_concurrent_registrations_distinct_mrns(receptionist, facility):
    """Eight desks register at the same instant, on a fresh counter and an empty audit
    log: eight patients, eight consecutive MRNs, an intact audit chain."""
    actor = Actor(receptionist, "127.0.0.1")

    results = run_at_once(THREADS, lambda i: do_register_patient(actor, fields(i)))

    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors
    mrns = sorted(p.mrn for p in results)
    assert len(set(mrns)) == THREADS
    assert Patient.objects.count() == THREADS
    numbers = [int(m[2:]) for m in mrns]
    assert numbers == list(range(1, THREADS + 1))
    assert Counter.objects.get(facility=facility).value == THREADS
    call_command("audit", "verify")

    # And again once the counter and the chain head exist.
    more = run_at_once(THREADS, lambda i: do_register_patient(actor, fields(i)))
    assert not [r for r in more if isinstance(r, Exception)]
    assert len({p.mrn for p in results + more}) == 2 * THREADS
    call_command("audit", "verify")


def test_it_registers_a_citizen_id_once_under_concurrency(receptionist):
    """The same CCCD sent from several desks at once: exactly one registration wins,
    the others fail on the unique constraint and leave nothing behind."""
    actor = Actor(receptionist, "127.0.0.1")
    same = {"cccd": "079085001234"}

    results = run_at_once(
        6, lambda i: do_register_patient(actor, fields(i, birth_year=1985) | same)
    )

    winners = [r for r in results if isinstance(r, Patient)]
    losers = [r for r in results if not isinstance(r, Patient)]
    assert len(winners) == 1
    assert all(isinstance(e, IntegrityError) for e in losers), losers
    assert Patient.objects.filter(cccd="079085001234").count() == 1
    assert Patient.objects.count() == 1
    call_command("audit", "verify")
