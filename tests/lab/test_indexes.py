"""lab_result and lab_analyzermessage carry few indexes, on purpose (decision #32: each
one is written on every analyzer message). These tests hold the other side of that
bargain: every lookup the lab makes on those tables is answered by an index, not by
reading the whole table — which grows by millions of rows a year.

The plans are checked on SQLite, whose planner takes an index whenever one applies.
PostgreSQL's planner weighs costs, and on a test's near-empty tables it may read a whole
small index or the table whatever indexes exist: there the test checks that the same
indexes exist, with the same columns and conditions."""

from __future__ import annotations

import pytest
from django.db import connection

from benhan.lab.ingest import sql_for
from benhan.lab.models import AnalyzerMessage, Result, ResultState

pytestmark = pytest.mark.django_db

sqlite_only = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="query plans are checked on SQLite (see the docstring)"
)


def _plan(sql: str, params: list) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return "\n".join(str(row[-1]) for row in cursor.fetchall())


def _queryset_plan(qs) -> str:
    sql, params = qs.query.sql_with_params()
    return _plan(sql, list(params))


def assert_uses(plan: str, table: str, index: str) -> None:
    """Every step of the plan that reads `table` (or the alias) searches `index`."""
    lines = [ln for ln in plan.splitlines() if ln.split()[1:2] == [table]]
    assert lines and all(ln.startswith("SEARCH") and f"INDEX {index} (" in ln for ln in lines), plan


@sqlite_only
def test_a_specimens_current_results(specimens):
    serum = specimens["serum"]
    qs = serum.results.filter(state=ResultState.CURRENT)
    assert_uses(_queryset_plan(qs), "lab_result", "result_specimen_state")
    # The listener's own statement, as it runs it.
    sql = sql_for("current results", 2)
    plan = _plan(sql, [serum.facility_id, serum.accession, "1", ResultState.CURRENT.value])
    assert_uses(plan, "r", "result_specimen_state")
    assert_uses(plan, "s", "sqlite_autoindex_lab_specimen_1")  # (facility, accession)


@sqlite_only
def test_the_unmatched_queue(facility):
    qs = Result.objects.filter(facility_id=facility.pk, state=ResultState.UNMATCHED)
    for q in (qs.order_by("-created_at", "-id"), qs.order_by()):  # the page; the count
        assert_uses(_queryset_plan(q), "lab_result", "result_unmatched")
    # A current result is not in that index: a query for them cannot use it.
    current = Result.objects.filter(facility_id=facility.pk, state=ResultState.CURRENT)
    assert "result_unmatched" not in _queryset_plan(current)


@sqlite_only
def test_a_messages_rows_and_the_messages_of_an_analyzer(hl7_analyzer):
    rows = AnalyzerMessage(pk=1).rows.all()
    assert_uses(_queryset_plan(rows), "lab_result", "lab_result_message_id_854261c5")
    messages = AnalyzerMessage.objects.filter(analyzer=hl7_analyzer)
    pending = messages.filter(matched_at__isnull=True).order_by("id")
    assert_uses(_queryset_plan(pending), "lab_analyzermessage", "analyzer_message_pending")
    again = messages.filter(sha256="0" * 64)
    assert_uses(_queryset_plan(again), "lab_analyzermessage",
                "sqlite_autoindex_lab_analyzermessage_1")  # fmt: skip
    assert_uses(_queryset_plan(messages.order_by()), "lab_analyzermessage",
                "sqlite_autoindex_lab_analyzermessage_1")  # fmt: skip


def _indexes(table: str) -> dict[tuple[str, ...], bool]:
    """Columns of each index (primary key and foreign-key constraints aside) → unique."""
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, table)
    return {tuple(c["columns"]): c["unique"] for c in found.values()
            if (c["index"] or c["unique"]) and not c["primary_key"]}  # fmt: skip


def test_the_same_few_indexes_on_either_database():
    assert _indexes("lab_result") == {
        ("specimen_id", "state"): False,
        ("facility_id", "created_at"): False,  # partial: unmatched only
        ("item_id",): False,
        ("message_id",): False,
    }
    assert _indexes("lab_analyzermessage") == {
        ("analyzer_id", "sha256"): True,
        ("analyzer_id",): False,  # partial: not matched yet
        ("received_at",): False,
    }
    if connection.vendor == "postgresql":
        sql = "SELECT indexname, indexdef FROM pg_indexes WHERE indexname IN (%s, %s)"
    else:
        sql = "SELECT name, sql FROM sqlite_master WHERE name IN (%s, %s)"
    with connection.cursor() as cursor:
        cursor.execute(sql, ["result_unmatched", "analyzer_message_pending"])
        partial = dict(cursor.fetchall())
    assert "unmatched" in partial["result_unmatched"].split("WHERE", 1)[1]
    assert "IS NULL" in partial["analyzer_message_pending"].split("WHERE", 1)[1]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plan cache")
def test_postgres_keeps_index_plans_from_a_new_clinics_empty_tables(hl7_analyzer, specimens):
    """PostgreSQL plans a prepared statement once for all after five runs, with the
    tables as they are then: on a new clinic's empty tables a sequential scan looks
    cheapest, and would stay as lab_result grows to millions of rows."""
    from benhan.lab.ingest import Ingestor
    from benhan.lab.messages import Message, Observation

    serum = specimens["serum"]
    ingestor = Ingestor(hl7_analyzer)
    for n in range(8):  # each one supersedes the last: the statements all run
        message = Message(protocol="hl7", message_type="ORU^R01", control_id=str(n),
                          observations=[Observation(specimen_id=serum.accession,
                                                    test_code="glu", value=f"5.{n}")])  # fmt: skip
        ingestor.store(f"message {n}".encode(), message)
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, generic_plans FROM pg_prepared_statements "
                       "WHERE statement LIKE 'SELECT r.id, r.specimen_id%%'")  # fmt: skip
        [(name, generic)] = cursor.fetchall()
        assert generic > 0  # the plan kept for all later runs
        cursor.execute(f"EXPLAIN EXECUTE {name}(%s, %s, %s)",
                       [serum.facility_id, serum.accession, ResultState.CURRENT.value])  # fmt: skip
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Seq Scan" not in plan, plan
    assert "result_specimen_state" in plan, plan
