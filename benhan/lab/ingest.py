"""From an analyzer's message to stored results, in one transaction, before the ACK.

The listener (benhan.lab.listeners) reads a message off the wire, parses it with the
protocol codec (pure, no database), builds the acknowledgement, and calls
`Ingestor.store()`: the raw bytes, the parse outcome, the acknowledgement and every
result are written in one transaction, and only then is the acknowledgement sent. If
the write fails, the analyzer is told so (AE) and sends again; a message received
twice (same bytes: the analyzer did not get our ACK) is stored once.

Each result is kept exactly as sent, with its parsed number and comparator. It is
matched to a specimen by the accession number the analyzer read off the barcode, and
to a catalogue test by the analyzer's code (AnalyzerCode) or the catalogue's own code.
Quality-control runs are kept apart (state "qc"); a result whose specimen or code is
unknown, or whose specimen is already signed, goes to the unmatched queue — nothing is
dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Prefetch
from django.utils import timezone

from benhan.lab.actions import apply_interpretation, patient_facts, status_for
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

log = logging.getLogger("benhan.lab")

# SQLite has one writer at a time: the listener threads of this process take turns
# here instead of meeting SQLite's lock (PostgreSQL writes in parallel, no lock).
_SQLITE_WRITES = threading.Lock()

# Codes and ranges are re-read this often, so an administrator's change applies
# without restarting the listeners.
CACHE_SECONDS = 30


@dataclass
class Stored:
    message: AnalyzerMessage
    duplicate: bool = False
    results: int = 0
    unmatched: int = 0


class Ingestor:
    """Stores one analyzer's messages. One per listener thread (not shared)."""

    def __init__(self, analyzer: Analyzer):
        self.analyzer = analyzer
        self._loaded = 0.0
        self.codes: dict[str, LabTest] = {}
        self.codes_of: dict[int, str] = {}
        self.ranges: dict[int, list[ReferenceRange]] = {}

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
              error: MessageError | None = None, peer: str = "",
              defer: bool = False) -> Stored:  # fmt: skip
        """Write the message, its outcome and its results. Call before sending `ack`.

        defer=True: write the raw message only (its results are matched by
        `match_pending()` just after): what the listeners do, so that an acknowledgement
        costs one small transaction whatever the matching does.
        """
        self._refresh()
        sha = hashlib.sha256(raw).hexdigest()
        if error is not None:
            outcome = (AnalyzerMessage.Outcome.REJECTED if error.code == "AR"
                       else AnalyzerMessage.Outcome.ERROR)  # fmt: skip
        elif parsed is not None and parsed.queries:
            outcome = AnalyzerMessage.Outcome.QUERY
        else:
            outcome = AnalyzerMessage.Outcome.ACCEPTED
        has_results = parsed is not None and error is None and bool(parsed.observations)
        now = timezone.now()
        turn = _SQLITE_WRITES if connection.vendor == "sqlite" else contextlib.nullcontext()
        try:
            with turn, transaction.atomic():
                msg = AnalyzerMessage.objects.create(
                    analyzer=self.analyzer, received_at=now, raw=raw, sha256=sha,
                    size=len(raw), message_type=(parsed.message_type if parsed else "")[:30],
                    control_id=(parsed.control_id if parsed else "")[:60], outcome=outcome,
                    reason=(error.reason if error else "")[:500], ack=ack, peer=peer[:100],
                    matched_at=None if (defer and has_results) else now,
                )  # fmt: skip
                stored = Stored(message=msg)
                if has_results and not defer:
                    self._results(msg, parsed, stored)
                    if stored.results or stored.unmatched:
                        AnalyzerMessage.objects.filter(pk=msg.pk).update(
                            results=stored.results, unmatched=stored.unmatched
                        )
                return stored
        except IntegrityError:
            # The same bytes again: the analyzer missed our acknowledgement.
            existing = AnalyzerMessage.objects.filter(analyzer=self.analyzer, sha256=sha).first()
            if existing is None:
                raise
            return Stored(message=existing, duplicate=True)

    def match_pending(self, limit: int = 8) -> int:
        """Match the results of messages stored with defer=True, up to `limit` of them
        in one transaction and a handful of queries. If the batch fails, each message is
        tried alone, so one bad message does not hold the others back. Returns how many
        were handled."""
        self._refresh()
        pending = list(AnalyzerMessage.objects.filter(analyzer=self.analyzer,
                                                      matched_at__isnull=True)
                       .only("id", "raw", "reason").order_by("id")[:limit])  # fmt: skip
        if not pending:
            return 0
        batch, failed = self._parse_all(pending)
        turn = _SQLITE_WRITES if connection.vendor == "sqlite" else contextlib.nullcontext()
        try:
            with turn, transaction.atomic():
                self._finish(pending, self._results_batch(batch), failed)
        except (DatabaseError, ValueError, LookupError):
            log.exception("analyzer %s: a batch failed; matching one by one", self.analyzer.name)
            for msg, parsed in batch:
                with turn, transaction.atomic():
                    try:
                        with transaction.atomic():
                            counts = self._results_batch([(msg, parsed)])
                    except (DatabaseError, ValueError, LookupError) as e:
                        counts, failed[msg.pk] = {}, f"results not matched: {e}"
                    self._finish([msg], counts, failed)
        return len(pending)

    def _parse_all(self, pending):
        from benhan.lab import astm, hl7v2

        codec = hl7v2 if self.analyzer.protocol == Analyzer.Protocol.HL7 else astm
        dialect = self.analyzer.dialect or {}
        batch, failed = [], {}
        for msg in pending:
            try:
                batch.append((msg, codec.parse(bytes(msg.raw), dialect)))
            except MessageError as e:  # parsed once already; kept raw for staff to see
                failed[msg.pk] = f"results not matched: {e}"
        return batch, failed

    @staticmethod
    def _finish(messages, counts: dict, failed: dict) -> None:
        """Mark the batch matched: one UPDATE per distinct pair of counts (most messages
        of an analyzer share theirs), not a CASE per message."""
        now = timezone.now()
        groups: dict[tuple[int, int], list[int]] = {}
        for msg in messages:
            if msg.pk in failed:
                AnalyzerMessage.objects.filter(pk=msg.pk).update(
                    matched_at=now, reason=failed[msg.pk][:500]
                )
                continue
            groups.setdefault(counts.get(msg.pk, (0, 0)), []).append(msg.pk)
        for (results, unmatched), pks in groups.items():
            AnalyzerMessage.objects.filter(pk__in=pks).update(
                matched_at=now, results=results, unmatched=unmatched
            )

    def _results(self, msg: AnalyzerMessage, parsed: Message, stored: Stored) -> None:
        stored.results, stored.unmatched = self._results_batch([(msg, parsed)]).get(msg.pk, (0, 0))

    def _results_batch(self, batch) -> dict[int, tuple[int, int]]:
        """Results rows for a batch of parsed messages, in a constant number of queries:
        the specimens named, their current results, one insert, a few updates.
        Returns {message id: (matched results, unmatched results)}."""
        now = timezone.now()
        facility_id = self.analyzer.facility_id
        ids = {o.specimen_id.strip() for _, p in batch for o in p.observations
               if o.specimen_id and not (o.qc or p.qc)}  # fmt: skip
        specimens = {
            s.accession: s
            for s in Specimen.objects.filter(facility_id=facility_id, accession__in=ids)
            .select_related("order__encounter__patient")
            # No default ordering: it would join the order and the catalogue for nothing.
            .prefetch_related(Prefetch("items", queryset=OrderItem.objects.order_by()))
            .order_by()
        }
        counts: dict[int, list[int]] = {}
        rows: list[Result] = []
        touched: dict[int, Specimen] = {}
        latest: dict[tuple[int, int], Result] = {}
        facts: dict[int, Any] = {}
        for msg, parsed in batch:
            c = counts.setdefault(msg.pk, [0, 0])
            for o in parsed.observations:
                test = self.codes.get(o.test_code.strip().upper())
                r = _row(
                    facility_id=facility_id, analyzer_id=self.analyzer.pk, message_id=msg.pk,
                    specimen_id_sent=o.specimen_id[:60], test_code_sent=o.test_code[:40],
                    test_name_sent=o.test_name[:100], value=o.value[:200], unit=o.unit[:30],
                    reference_range=o.reference_range[:60], flags=o.flags[:30],
                    status_sent=o.status[:5], observed_at=o.observed_at,
                    test_id=test.pk if test else None, created_at=now,
                )  # fmt: skip
                specimen = specimens.get(o.specimen_id.strip())
                if o.qc or parsed.qc:
                    r.state = ResultState.QC
                    r.value_num, r.comparator = parse_value(o.value)
                elif (specimen is None or test is None or specimen.status == SpecimenStatus.SIGNED
                      or specimen.report_id is not None):  # fmt: skip
                    r.state = ResultState.UNMATCHED
                    r.value_num, r.comparator = parse_value(o.value)
                    r.reason = _why_unmatched(specimen, test)
                    c[1] += 1
                else:
                    r.specimen_id = specimen.pk
                    r.item_id = next(
                        (i.pk for i in specimen.items.all() if i.test_id == test.pk), None
                    )
                    if specimen.pk not in facts:
                        facts[specimen.pk] = patient_facts(specimen)
                    apply_interpretation(r, test, facts[specimen.pk], self.ranges.get(test.pk, []))
                    touched[specimen.pk] = specimen
                    # The same test twice in one batch (a rerun): the later one stands.
                    earlier = latest.get((specimen.pk, test.pk))
                    if earlier is not None:
                        earlier.state = ResultState.SUPERSEDED
                    latest[(specimen.pk, test.pk)] = r
                    c[0] += 1
                rows.append(r)
        done: dict[int, set[int]] = {pk: set() for pk in touched}
        if touched:
            # A new value for a test supersedes the current one; the old row stays.
            previous = {}
            current = (Result.objects.filter(specimen_id__in=touched, state=ResultState.CURRENT)
                       .order_by().values_list("pk", "specimen_id", "test_id"))  # fmt: skip
            for pk, specimen_id, test_id in current:
                done[specimen_id].add(test_id)
                if (specimen_id, test_id) in latest:
                    previous[(specimen_id, test_id)] = pk
            for r in rows:
                if r.specimen_id is not None:
                    r.supersedes_id = previous.get((r.specimen_id, r.test_id))
            if previous:
                Result.objects.filter(pk__in=previous.values()).update(state=ResultState.SUPERSEDED)
        _insert(rows)
        self._statuses(touched, done, latest)
        return {k: (v[0], v[1]) for k, v in counts.items()}

    @staticmethod
    def _statuses(touched: dict, done: dict, latest: dict) -> None:
        """COLLECTED → PARTIAL → COMPLETE from what is loaded: a few UPDATEs a batch."""
        for specimen_id, test_id in latest:
            done[specimen_id].add(test_id)
        by_status: dict[str, list[int]] = {}
        orders = set()
        for pk, specimen in touched.items():
            ordered = {i.test_id for i in specimen.items.all()
                       if i.status != OrderStatus.CANCELLED}  # fmt: skip
            status = status_for(ordered, done[pk])
            if status == SpecimenStatus.COLLECTED:
                continue
            if status != specimen.status:
                by_status.setdefault(status, []).append(pk)
                specimen.status = status
            if specimen.order.status == OrderStatus.COLLECTED:
                orders.add(specimen.order_id)
        for status, pks in by_status.items():
            Specimen.objects.filter(pk__in=pks).update(status=status)
        if orders:
            LabOrder.objects.filter(pk__in=orders, status=OrderStatus.COLLECTED).update(
                status=OrderStatus.RESULTED
            )

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


def _why_unmatched(specimen, test) -> str:
    if specimen is None:
        return "unknown specimen"
    if test is None:
        return "unknown test code"
    if specimen.status == SpecimenStatus.SIGNED:
        return "specimen already signed"
    return "report already written"  # link it, and the report is written again


# --- Result rows without model instances --------------------------------------------
#
# A message of 6 results made 6 model instances and went through bulk_create's SQL
# compiler: ~0.35 ms a row, most of an analyzer message's cost. The rows here are plain
# objects with the model's column attributes and defaults, written with one executemany
# using each field's own database conversion (get_db_prep_save, what the ORM uses).

_RESULT_FIELDS = [f for f in Result._meta.concrete_fields if not f.primary_key]
_RESULT_DEFAULTS = {f.attname: f.get_default() for f in _RESULT_FIELDS}


class _Row:
    __slots__ = tuple(_RESULT_DEFAULTS)

    def __init__(self, **values):
        for name, default in _RESULT_DEFAULTS.items():
            setattr(self, name, values.pop(name, default))
        if values:
            raise TypeError(f"not a Result column: {sorted(values)}")


def _row(**values) -> _Row:
    return _Row(**values)


def _insert(rows: list[_Row]) -> None:
    if not rows:
        return
    quote = connection.ops.quote_name
    # Table and column names come from the model, quoted; values are parameters.
    sql = "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608
        quote(Result._meta.db_table),
        ", ".join(quote(f.column) for f in _RESULT_FIELDS),
        ", ".join(["%s"] * len(_RESULT_FIELDS)),
    )
    params = [[f.get_db_prep_save(getattr(r, f.attname), connection) for f in _RESULT_FIELDS]
              for r in rows]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
