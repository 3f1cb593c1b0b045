"""From an analyzer's message to stored results, in one transaction, before the ACK.

The listener (benhan.lab.listeners) reads a message off the wire, parses it with the
protocol codec (pure, no database), builds the acknowledgement, and calls
`Ingestor.store()`: the raw bytes, the parse outcome, the acknowledgement and every
result are written in one transaction, and only then is the acknowledgement sent. If
the write fails, the analyzer is told so (AE) and sends again; a message received
twice (same bytes: the analyzer did not get our ACK) is stored once. If only the
matching fails (a fault of ours, not of the message), the raw message is kept with the
reason, acknowledged, and matched again at the listener's next start.

Each result is kept exactly as sent, with its parsed number and comparator. It is
matched to a specimen by the accession number the analyzer read off the barcode, and
to a catalogue test by the analyzer's code (AnalyzerCode) or the catalogue's own code.
Quality-control runs are kept apart (state "qc"); a result whose specimen or code is
unknown, or whose specimen is already signed, goes to the unmatched queue — nothing is
dropped.

This is the one hot path of the application (hundreds of messages a second from a
busy laboratory, on one core): its few statements are plain SQL on the models' tables
(see "The hot path's SQL" below); everything else in the lab goes through the ORM.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import operator
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import (
    DEFAULT_DB_ALIAS,
    IntegrityError,
    connection,
    connections,
    models,
    transaction,
)
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from benhan.encounters.models import Encounter
from benhan.lab.actions import apply_interpretation, facts_for, status_for
from benhan.lab.catalogue import parse_value
from benhan.lab.messages import Message, MessageError, PendingOrder, PendingTest, Query
from benhan.lab.models import (
    Analyzer,
    AnalyzerCode,
    AnalyzerMessage,
    LabOrder,
    LabTest,
    OrderItem,
    OrderStatus,
    ReferenceRange,
    Result,
    ResultState,
    Specimen,
    SpecimenStatus,
)
from benhan.patients.models import Patient

log = logging.getLogger("benhan.lab")

# SQLite has one writer at a time: the threads of this process take turns here instead
# of meeting SQLite's lock (PostgreSQL writes in parallel, no lock). Re-entrant: the
# listeners' worker holds it around a group of messages, each of which takes it again.
_SQLITE_WRITES = threading.RLock()

# Codes and ranges are re-read this often, so an administrator's change applies
# without restarting the listeners.
CACHE_SECONDS = 30
# Message ids taken from the sequence at once on PostgreSQL (see _insert_message); the
# ids of a listener that stops are never used: gaps, nothing else.
IDS_RESERVED = 64


def writing_turn():
    """Hold while writing: this process's turn at SQLite's single writer."""
    return _SQLITE_WRITES if connection.vendor == "sqlite" else contextlib.nullcontext()


@dataclass
class Stored:
    message_id: int
    duplicate: bool = False
    results: int = 0
    unmatched: int = 0


@dataclass
class _Specimen:
    """What matching needs of a specimen, read in one query."""

    pk: int
    status: str
    report_id: int | None
    order_id: int
    order_status: str
    facts: tuple  # sex, birth date, day of collection (actions.facts_for)
    items: list[tuple[int, int, str]]  # (order item id, test id, status)


@dataclass
class _Plan:
    """A message's result rows, planned inside its transaction (Ingestor._plan)."""

    rows: list = field(default_factory=list)
    matched: int = 0
    unmatched: int = 0
    touched: dict[int, _Specimen] = field(default_factory=dict)  # specimens given results
    latest: dict[tuple[int, int], Any] = field(default_factory=dict)  # (specimen, test) → row
    supersede: dict[tuple[int, int], int] = field(default_factory=dict)  # → current row id
    done: defaultdict[int, set[int]] = field(default_factory=lambda: defaultdict(set))


class Ingestor:
    """Stores one analyzer's messages. One per listener thread (not shared)."""

    def __init__(self, analyzer: Analyzer):
        self.analyzer = analyzer
        self._loaded = 0.0
        self.codes: dict[str, LabTest] = {}
        self.codes_of: dict[int, str] = {}
        self.ranges: dict[int, list[ReferenceRange]] = {}
        self._ids: deque[int] = deque()  # message ids reserved (PostgreSQL)

    def _refresh(self) -> None:
        if time.monotonic() - self._loaded < CACHE_SECONDS:
            return
        tests = {t.pk: t for t in LabTest.objects.filter(facility_id=self.analyzer.facility_id)}
        codes = {t.code.upper(): t for t in tests.values()}
        codes_of = {t.pk: t.code for t in tests.values()}
        for c in AnalyzerCode.objects.filter(analyzer=self.analyzer):
            codes[c.code.strip().upper()] = tests[c.test_id]
            codes_of[c.test_id] = c.code
        ranges: dict[int, list[ReferenceRange]] = {}
        for r in ReferenceRange.objects.filter(test__facility_id=self.analyzer.facility_id):
            ranges.setdefault(r.test_id, []).append(r)
        self.codes, self.codes_of, self.ranges = codes, codes_of, ranges
        self._loaded = time.monotonic()

    # --- storing --------------------------------------------------------------------

    def store(self, raw: bytes, parsed: Message | None, *, ack: bytes = b"",
              error: MessageError | None = None, peer: str = "") -> Stored:  # fmt: skip
        """Write the message, its outcome and its results in one transaction. Call before
        sending `ack`.

        If the results cannot be matched (a fault of ours, not of the message: a bug, a
        deadlock), the raw message is still stored, unmatched, with the reason, and may
        be acknowledged: sending it again would not help. `match_pending()` tries again."""
        self._refresh()
        sha = hashlib.sha256(raw).hexdigest()
        if error is not None:
            outcome = (AnalyzerMessage.Outcome.REJECTED if error.code == "AR"
                       else AnalyzerMessage.Outcome.ERROR)  # fmt: skip
        elif parsed is not None and parsed.queries:
            outcome = AnalyzerMessage.Outcome.QUERY
        else:
            outcome = AnalyzerMessage.Outcome.ACCEPTED
        message = _MESSAGES.row(
            analyzer_id=self.analyzer.pk, received_at=timezone.now(), raw=raw, sha256=sha,
            size=len(raw), message_type=(parsed.message_type if parsed else "")[:30],
            control_id=(parsed.control_id if parsed else "")[:60], outcome=outcome.value,
            reason=(error.reason if error else "")[:500], ack=ack, peer=peer[:100],
        )  # fmt: skip
        results = parsed if parsed is not None and error is None and parsed.observations else None
        try:
            return self._write(message, results)
        except Exception as e:
            if isinstance(e, IntegrityError):
                # The same bytes again: the analyzer missed our acknowledgement.
                existing = (AnalyzerMessage.objects.filter(analyzer=self.analyzer, sha256=sha)
                            .values_list("pk", flat=True).first())  # fmt: skip
                if existing is not None:
                    return Stored(existing, duplicate=True)
            if results is None:
                raise
            log.exception("analyzer %s: results of message %r not matched; storing it raw",
                          self.analyzer.name, message.control_id)  # fmt: skip
            message.reason = f"results not matched: {e}"[:500]
            return self._write(message, None, matched=False)

    def _write(self, message: _Row, parsed: Message | None, *, matched: bool = True) -> Stored:
        with writing_turn(), _transaction():
            plan = self._plan(parsed) if parsed is not None else None
            if plan is not None:
                message.results, message.unmatched = plan.matched, plan.unmatched
            message.matched_at = message.received_at if matched else None
            with _cursor() as cursor:
                stored = Stored(self._insert_message(cursor, message))
                if plan is not None:
                    self._write_plan(cursor, plan, stored.message_id)
                    stored.results, stored.unmatched = plan.matched, plan.unmatched
            return stored

    def _insert_message(self, cursor, message: _Row) -> int:
        """Insert the message; its id. On PostgreSQL the id is one reserved beforehand
        (_reserve_ids), so that the writes need not wait for the insert's answer."""
        if not _POSTGRES:
            return _MESSAGES.insert_one(cursor, message)
        if not self._ids:
            self._ids.extend(_reserve_ids(AnalyzerMessage, IDS_RESERVED))
        return _MESSAGES.insert_one(cursor, message, pk=self._ids.popleft())

    def match_pending(self) -> int:
        """Match the results of messages stored unmatched (see store()). Run by the
        listeners at start and every minute. Returns how many were matched."""
        from benhan.lab import astm, hl7v2

        self._refresh()
        codec = hl7v2 if self.analyzer.protocol == Analyzer.Protocol.HL7 else astm
        pending = list(AnalyzerMessage.objects.filter(analyzer=self.analyzer,
                                                      matched_at__isnull=True)
                       .order_by("id").values_list("pk", "raw"))  # fmt: skip
        done = 0
        for pk, raw in pending:
            try:
                parsed = codec.parse(bytes(raw), self.analyzer.dialect or {})
                with writing_turn(), _transaction():
                    plan = self._plan(parsed)
                    with _cursor() as cursor:
                        self._write_plan(cursor, plan, pk)
                        params = [plan.matched, plan.unmatched, _utc(timezone.now()), pk]
                        cursor.execute(_SQL["message matched"], params)
                done += 1
            except MessageError as e:  # parsed once already; kept raw for staff to see
                AnalyzerMessage.objects.filter(pk=pk).update(
                    matched_at=timezone.now(), reason=f"results not matched: {e}"[:500]
                )
            except Exception:
                log.exception("analyzer %s: message %s still not matched", self.analyzer.name, pk)
        return done

    def _plan(self, parsed: Message) -> _Plan:
        """A message's result rows, from two statements sent together (the specimens
        named with their patient and order items, locked on PostgreSQL as the web actions
        lock them; their current results) and the cached codes and ranges."""
        now = timezone.now()
        facility_id = self.analyzer.facility_id
        named = {o.specimen_id.strip() for o in parsed.observations
                 if o.specimen_id and not (o.qc or parsed.qc)}  # fmt: skip
        specimens, current = _specimens(facility_id, named)
        plan = _Plan()
        for o in parsed.observations:
            test = self.codes.get(o.test_code.strip().upper())
            r = _RESULTS.row(
                facility_id=facility_id, analyzer_id=self.analyzer.pk,
                specimen_id_sent=o.specimen_id[:60], test_code_sent=o.test_code[:40],
                test_name_sent=o.test_name[:100], value=o.value[:200], unit=o.unit[:30],
                reference_range=o.reference_range[:60], flags=o.flags[:30],
                status_sent=o.status[:5], observed_at=o.observed_at,
                test_id=test.pk if test else None, created_at=now,
            )  # fmt: skip
            specimen = specimens.get(o.specimen_id.strip())
            if o.qc or parsed.qc:
                r.state = ResultState.QC.value
                r.value_num, r.comparator = parse_value(o.value)
            elif (specimen is None or test is None or specimen.status == SpecimenStatus.SIGNED
                  or specimen.report_id is not None):  # fmt: skip
                r.state = ResultState.UNMATCHED.value
                r.value_num, r.comparator = parse_value(o.value)
                r.reason = _why_unmatched(specimen, test)
                plan.unmatched += 1
            else:
                r.specimen_id = specimen.pk
                r.item_id = next((i for i, t, _ in specimen.items if t == test.pk), None)
                apply_interpretation(r, test, specimen.facts, self.ranges.get(test.pk, []))
                plan.touched[specimen.pk] = specimen
                # The same test twice in one message (a rerun): the later one stands.
                earlier = plan.latest.get((specimen.pk, test.pk))
                if earlier is not None:
                    earlier.state = ResultState.SUPERSEDED.value
                plan.latest[(specimen.pk, test.pk)] = r
                plan.matched += 1
            plan.rows.append(r)
        for pk, specimen_id, test_id in current:
            if specimen_id in plan.touched:
                plan.done[specimen_id].add(test_id)
                if (specimen_id, test_id) in plan.latest:
                    plan.supersede[(specimen_id, test_id)] = pk
        return plan

    def _write_plan(self, cursor, plan: _Plan, message_id: int) -> None:
        """A new value supersedes the current one (the old row stays); the rows in one
        executemany; the specimens and their order move on."""
        for r in plan.rows:
            r.message_id = message_id
            if r.specimen_id is not None:
                r.supersedes_id = plan.supersede.get((r.specimen_id, r.test_id))
        if plan.supersede:
            _update(cursor, "supersede", list(plan.supersede.values()),
                    [ResultState.SUPERSEDED.value])  # fmt: skip
        _RESULTS.insert(cursor, plan.rows)
        _statuses(cursor, plan)

    # --- host queries ---------------------------------------------------------------

    def orders_for(self, query: Query) -> list[PendingOrder]:
        """What to run on each specimen asked about: its ordered tests (in this
        analyzer's codes) that have no current result yet."""
        self._refresh()
        out = []
        ids = [s.strip() for s in query.specimen_ids if s.strip()]
        specimens = {
            s.accession: s
            for s in Specimen.objects.filter(facility_id=self.analyzer.facility_id,
                                             accession__in=ids)
            .select_related("order__encounter__patient")
            .prefetch_related("items__test")
        }  # fmt: skip
        for sid in ids:
            s = specimens.get(sid)
            if s is None or s.status == SpecimenStatus.SIGNED:
                out.append(PendingOrder(specimen_id=sid, tests=[], found=False))
                continue
            done = set(
                s.results.filter(state=ResultState.CURRENT).values_list("test_id", flat=True)
            )
            tests = [
                PendingTest(code=self.codes_of.get(i.test_id, i.test.code), name=i.test.name)
                for i in s.items.all()
                if i.test_id not in done and i.status != OrderStatus.CANCELLED
                and not i.test.is_imaging
            ]  # fmt: skip
            p = s.order.encounter.patient
            out.append(PendingOrder(
                specimen_id=sid, tests=tests, patient_id=p.mrn, patient_name=p.full_name,
                birth_date=p.birth_date, sex=p.sex or "U",
                priority="S" if s.order.priority == "stat" else "R",
                collected_at=s.collected_at, specimen_type=s.get_specimen_type_display(),
                found=bool(tests),
            ))  # fmt: skip
        return out


def _statuses(cursor, plan: _Plan) -> None:
    """COLLECTED → PARTIAL → COMPLETE (actions.status_for, the one rule); the order moves
    to RESULTED with its first result."""
    for specimen_id, test_id in plan.latest:
        plan.done[specimen_id].add(test_id)
    by_status: dict[str, list[int]] = {}
    orders = set()
    for pk, specimen in plan.touched.items():
        ordered = {t for _, t, status in specimen.items if status != OrderStatus.CANCELLED}
        status = status_for(ordered, plan.done[pk])
        if status == SpecimenStatus.COLLECTED:
            continue
        if status != specimen.status:
            by_status.setdefault(status, []).append(pk)
        if specimen.order_status == OrderStatus.COLLECTED:
            orders.add(specimen.order_id)
    for status, pks in by_status.items():
        _update(cursor, "specimen status", pks, [str(status)])
    if orders:
        _update(cursor, "order resulted", list(orders),
                [OrderStatus.RESULTED.value, OrderStatus.COLLECTED.value])  # fmt: skip


def _why_unmatched(specimen, test) -> str:
    if specimen is None:
        return "unknown specimen"
    if test is None:
        return "unknown test code"
    if specimen.status == SpecimenStatus.SIGNED:
        return "specimen already signed"
    return "report already written"  # link it, and the report is written again


# --- The hot path's SQL ----------------------------------------------------------------
#
# Through the ORM a message cost ~6 ms on the reference machine, ~5 of them in Django
# compiling SQL and building model instances (0.3 ms for a three-column values_list
# against 0.03 ms for its statement). Here the statements are written once, on the
# models' own tables (names from their _meta), portable between SQLite and PostgreSQL,
# with parameters; values are converted by each field's own get_db_prep_save, what the
# ORM itself uses. The tests run them on both databases.
#
# On PostgreSQL they run with the values bound by the server (see _cursor), so that
# psycopg prepares each statement after a few runs: Django binds on the client, nothing
# could be prepared, and the five-table specimen query was planned again for every
# message (0.85 ms). A list of ids is one array parameter there (= ANY), so that each
# statement has one text whatever the number of ids; SQLite gets an IN list.

_POSTGRES = connection.vendor == "postgresql"

_TABLES = {m.__name__: connection.ops.quote_name(m._meta.db_table)
           for m in (Specimen, LabOrder, Encounter, Patient, OrderItem, Result,
                     AnalyzerMessage)}  # fmt: skip


def _sql(text: str) -> str:
    # Table names from the models, quoted; {ids} stays for the list of ids (sql_for);
    # values are always parameters.
    return text.format(ids="{ids}", **_TABLES)


_SQL = {
    # One row per order item (a specimen has at least one).
    "specimens": _sql(
        "SELECT s.id, s.accession, s.status, s.report_id, s.order_id, o.status, "
        "s.collected_at, p.sex, p.birth_date, p.birth_year, i.id, i.test_id, i.status "
        "FROM {Specimen} s JOIN {LabOrder} o ON o.id = s.order_id "
        "JOIN {Encounter} e ON e.id = o.encounter_id JOIN {Patient} p ON p.id = e.patient_id "
        "LEFT JOIN {OrderItem} i ON i.specimen_id = s.id "
        "WHERE s.facility_id = %s AND s.accession {ids}"
        # Lock the specimens, in id order, as the web actions do (nothing to add on
        # SQLite, whose writers take turns anyway).
        + (" ORDER BY s.id FOR UPDATE OF s" if _POSTGRES else "")
    ),
    # The current results of the same specimens, found by accession number: so that
    # this statement need not wait for the first one's answer (one round trip for both).
    "current results": _sql(
        "SELECT r.id, r.specimen_id, r.test_id FROM {Result} r "
        "JOIN {Specimen} s ON s.id = r.specimen_id "
        "WHERE s.facility_id = %s AND s.accession {ids} AND r.state = %s"
    ),
    "supersede": _sql("UPDATE {Result} SET state = %s WHERE id {ids}"),
    "specimen status": _sql("UPDATE {Specimen} SET status = %s WHERE id {ids}"),
    "order resulted": _sql("UPDATE {LabOrder} SET status = %s "
                           "WHERE status = %s AND id {ids}"),
    "message matched": _sql("UPDATE {AnalyzerMessage} SET results = %s, unmatched = %s, "
                            "matched_at = %s WHERE id = %s"),
}  # fmt: skip


@functools.cache
def sql_for(name: str, count: int) -> str:
    """Statement `name` for a list of `count` ids."""
    if _POSTGRES:
        ids = "= %s" if count == 1 else "= ANY(%s)"
    else:
        ids = f"IN ({', '.join(['%s'] * count)})"
    return _SQL[name].format(ids=ids)


def _listed(ids: list) -> list:
    """The parameters that stand for a list of ids in sql_for's statements."""
    if _POSTGRES:
        return ids if len(ids) == 1 else [ids]
    return ids


def _db():
    # The connection itself, not django.db.connection: the proxy looks the connection up
    # in a thread-local on every attribute.
    return connections[DEFAULT_DB_ALIAS]


def _cursor() -> CursorWrapper:
    """Django's cursor; on PostgreSQL one that binds on the server (see above), under
    Django's wrapper all the same: its errors become Django's (IntegrityError for a
    message received twice) and execute wrappers (the benchmark's timing) see every
    statement. While queries are logged (DEBUG, a test counting them) it is Django's
    own: the same statements, bound on the client, whose text Django can log."""
    db = _db()
    if not _POSTGRES or db.queries_logged:
        return db.cursor()
    import psycopg

    db.ensure_connection()
    if db.connection.prepare_threshold is None:
        # Django turns preparing off for every cursor of the connection (for connection
        # poolers); only cursors that bind on the server prepare, and only these do.
        # PgBouncer keeps prepared statements in transaction mode from version 1.21
        # (max_prepared_statements): docs/deployment.md.
        db.connection.prepare_threshold = 0  # from the first run
    return CursorWrapper(psycopg.Cursor(db.connection), db)


def _update(cursor, name: str, ids: list, params: list) -> None:
    """One of the UPDATEs above with a list of `ids`: its fixed parameters (SET …) first.
    Nothing is read back, so that in a pipeline it does not wait."""
    cursor.execute(sql_for(name, len(ids)), params + _listed(ids))


@contextlib.contextmanager
def _pipeline():
    """On PostgreSQL, statements sent without waiting for each answer (psycopg's pipeline
    mode); the answers, and any error, come at the end of the block, as Django's errors
    (IntegrityError for a message received twice). SQLite is in process: nothing to
    wait for."""
    if not _POSTGRES:
        yield
        return
    db = _db()
    db.ensure_connection()
    with db.wrap_database_errors, db.connection.pipeline():
        yield


# PostgreSQL plans a prepared statement once for all (a generic plan) after five runs,
# with the tables as they are then. A listener that starts on a new clinic's near-empty
# tables got a sequential scan of lab_result for a specimen's current results — and
# kept it as the table grew (3.5 ms a message after 3,000 messages, and growing). Every
# statement of the hot path is a lookup by key: index scans are the right plan at any
# size, so the hot path's transactions ask for them (the setting ends with the
# transaction; the web's queries are not concerned).
_INDEX_SCANS = "SELECT set_config('enable_seqscan', 'off', true)"


@contextlib.contextmanager
def _transaction():
    """The hot path's transaction. On PostgreSQL two round trips: the reads (_fetch_all),
    then the writes with the COMMIT, in a pipeline around the transaction (nothing
    waits for an answer until the commit, whose failure rolls back as usual). Inside
    another transaction (the listeners' worker groups messages; a test) it is a
    savepoint, and the pipeline ends inside it: an error must roll the savepoint back,
    not surface after it is released. SQLite runs the statements one by one."""
    if not _POSTGRES:
        with transaction.atomic():
            yield
    elif _db().in_atomic_block:
        with transaction.atomic(), _pipeline():
            yield
    else:
        with _pipeline(), transaction.atomic():
            yield


def _fetch_all(statements: list[tuple[str, list]]) -> list[list[tuple]]:
    """Run independent SELECTs, each on a cursor of its own, and read their rows: sent
    together to PostgreSQL (one round trip, after _INDEX_SCANS), one after the other
    to SQLite. The first statements of each hot-path transaction."""
    with _pipeline(), contextlib.ExitStack() as stack:
        if _POSTGRES:
            stack.enter_context(_cursor()).execute(_INDEX_SCANS)
        cursors = [stack.enter_context(_cursor()) for _ in statements]
        for cursor, (sql, params) in zip(cursors, statements, strict=True):
            cursor.execute(sql, params)
        return [cursor.fetchall() for cursor in cursors]


def _reserve_ids(model: type[models.Model], n: int) -> list[int]:
    """n fresh ids from the sequence of a PostgreSQL table's id column (identity)."""
    table = model._meta.db_table
    sql = "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)"
    with _cursor() as cursor:
        cursor.execute(sql, [table, model._meta.pk.column, n])
        return [row[0] for row in cursor.fetchall()]


def _utc(value: datetime | None):
    return AnalyzerMessage._meta.get_field("matched_at").get_db_prep_save(value, _db())


def _aware(value) -> datetime:
    """A datetime column as read without the ORM: SQLite gives it naive (in UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)


def _specimens(facility_id: int, accessions: set[str]) -> tuple[dict[str, _Specimen], list]:
    """The specimens named, by accession, with their patient's facts and order items;
    and their current results, as (id, specimen id, test id)."""
    if not accessions:
        return {}, []
    ids = sorted(accessions)
    n, listed = len(ids), _listed(ids)
    rows, current = _fetch_all([
        (sql_for("specimens", n), [facility_id, *listed]),
        (sql_for("current results", n), [facility_id, *listed, ResultState.CURRENT.value]),
    ])  # fmt: skip
    found: dict[str, _Specimen] = {}
    for (pk, accession, status, report_id, order_id, order_status, collected_at, sex,
         birth_date, birth_year, item_id, test_id, item_status) in rows:  # fmt: skip
        specimen = found.get(accession)
        if specimen is None:
            specimen = found[accession] = _Specimen(
                pk=pk, status=status, report_id=report_id, order_id=order_id,
                order_status=order_status, items=[],
                facts=facts_for(sex, birth_date, birth_year, _aware(collected_at)),
            )  # fmt: skip
        if item_id is not None:
            specimen.items.append((item_id, test_id, item_status))
    return found, current


def _as_is(f) -> tuple[type, ...]:
    """The Python types a field's get_db_prep_save returns unchanged (Django's own
    to_python/get_prep_value for text, integers and booleans): those values skip the
    call; any other value (a date, a decimal, None for a date) takes it."""
    if isinstance(f, models.ForeignKey):
        f = f.target_field
    if isinstance(f, (models.CharField, models.TextField)):
        return (str, type(None))
    if isinstance(f, models.BooleanField):
        return (bool,)
    if isinstance(f, models.IntegerField):  # AutoField and BigAutoField too
        return (int, type(None))
    return ()


class _Row:
    """A row of a _Table: the model's columns as attributes, with their defaults."""

    __slots__ = ()
    _defaults: dict[str, Any] = {}

    def __init__(self, **values):
        for name, default in self._defaults.items():
            setattr(self, name, values.pop(name, default))
        if values:
            raise TypeError(f"not a column: {sorted(values)}")


class _Table:
    """Rows of one model written without model instances: a message of six results
    made six instances and went through bulk_create's SQL compiler, ~0.35 ms a row.
    The same columns, types, defaults and constraints; one executemany."""

    def __init__(self, model: type[models.Model]):
        fields = [f for f in model._meta.concrete_fields if not f.primary_key]
        defaults = {f.attname: f.get_default() for f in fields}
        self.row = type(f"{model.__name__}Row", (_Row,),
                        {"__slots__": tuple(defaults), "_defaults": defaults})  # fmt: skip
        self._columns = [(f, _as_is(f)) for f in fields]
        self._values = operator.attrgetter(*defaults)  # a row's values, in column order
        quote = connection.ops.quote_name
        # Table and column names come from the model, quoted; values are parameters.
        table, columns = quote(model._meta.db_table), [quote(f.column) for f in fields]
        self._pk = quote(model._meta.pk.column)
        self._sql = "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608
            table, ", ".join(columns), ", ".join(["%s"] * len(columns))
        )
        # The same with the id given (one reserved beforehand: _reserve_ids).
        self._sql_with_pk = "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608
            table, ", ".join([self._pk, *columns]), ", ".join(["%s"] * (len(columns) + 1))
        )

    def _params(self, rows: list, conn) -> list[list]:
        done: dict = {}  # a message's times and states repeat: each converted once

        def prep(field, v):
            key = (field, v)
            if key not in done:
                done[key] = field.get_db_prep_save(v, conn)
            return done[key]

        columns = self._columns
        return [[v if type(v) in as_is else prep(f, v)
                 for v, (f, as_is) in zip(self._values(r), columns, strict=True)]
                for r in rows]  # fmt: skip

    def insert(self, cursor, rows: list) -> None:
        if rows:
            cursor.executemany(self._sql, self._params(rows, _db()))

    def insert_one(self, cursor, row: _Row, *, pk: int | None = None) -> int:
        """Insert one row; its id: `pk` if given (nothing is read back, so that in a
        pipeline it does not wait), else the database's (RETURNING: SQLite ≥ 3.35 and
        PostgreSQL)."""
        [params] = self._params([row], _db())
        if pk is not None:
            cursor.execute(self._sql_with_pk, [pk, *params])
            return pk
        cursor.execute(f"{self._sql} RETURNING {self._pk}", params)
        return cursor.fetchone()[0]


_RESULTS = _Table(Result)
_MESSAGES = _Table(AnalyzerMessage)
