"""`benhan lab …`: the laboratory from the command line (the IT person's tool).

    benhan lab inbox [--json] [--limit N] [--analyzer NAME] [--unmatched]
    benhan lab results ACCESSION [--json]
    benhan lab catalogue load            load or refresh the starting test catalogue
    benhan lab listen                    run the analyzer listeners (benhan serve does)
    benhan lab spool                     store ASTM transmissions spooled while the
                                         database was failing

Reading results from here is audited like any other access, with no user attached.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from benhan.audit.chain import Actor, record


def result_row(r) -> dict:
    return {
        "analyzer": r.analyzer.name if r.analyzer else None,
        "message_id": r.message.control_id if r.message else None,
        "received_at": r.message.received_at.isoformat() if r.message else r.created_at.isoformat(),
        "specimen_id": r.specimen_id_sent,
        "test_code": r.test_code_sent,
        "test": r.test.code if r.test else None,
        "test_name": r.test.name if r.test else r.test_name_sent,
        "value": r.value,
        "number": str(r.value_num) if r.value_num is not None else None,
        "comparator": r.comparator,
        "unit": r.unit,
        "reference_range": r.reference_range,
        "flags": r.flags,
        "interpretation": r.interpretation,
        "critical": r.critical,
        "result_status": r.status_sent,
        "status": r.state,
        "reason": r.reason,
        "accession": r.specimen.accession if r.specimen else None,
        "source": r.source,
    }


class Command(BaseCommand):
    help = "The laboratory: received results, one specimen's results, the catalogue, listeners."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="sub", required=True)
        inbox = sub.add_parser("inbox", help="results received from analyzers, newest first")
        inbox.add_argument("--json", action="store_true")
        inbox.add_argument("--limit", type=int, default=200)
        inbox.add_argument("--analyzer", help="only this analyzer (name)")
        inbox.add_argument("--unmatched", action="store_true", help="only the unmatched queue")
        res = sub.add_parser("results", help="one specimen's results")
        res.add_argument("accession")
        res.add_argument("--json", action="store_true")
        res.add_argument("--all", action="store_true", help="also superseded values")
        cat = sub.add_parser("catalogue", help="the test catalogue")
        cat.add_argument("action", choices=["load"])
        cat.add_argument("--facility", help="facility code (default: every facility)")
        sub.add_parser("listen", help="run the analyzer listeners until stopped")
        sub.add_parser("spool", help="store ASTM transmissions spooled when the database failed")

    def handle(self, *args, sub, **o):
        if sub == "inbox":
            self.inbox(o["json"], o["limit"], o["analyzer"], o["unmatched"])
        elif sub == "results":
            self.results(o["accession"], o["json"], o["all"])
        elif sub == "catalogue":
            self.catalogue(o["facility"])
        elif sub == "spool":
            from benhan.lab.listeners import replay_spool

            stored, left = replay_spool()
            self.stdout.write(f"{stored} spooled transmission(s) stored, {left} left")
            if left:
                raise CommandError("some spooled transmissions could not be stored yet")
        else:
            from benhan.lab.listeners import run_forever

            run_forever(stdout=self.stdout)

    def inbox(self, as_json: bool, limit: int, analyzer: str | None, unmatched: bool) -> None:
        from benhan.lab.models import Result, ResultState

        qs = Result.objects.filter(analyzer__isnull=False).select_related(
            "analyzer", "message", "test", "specimen"
        )
        if analyzer:
            qs = qs.filter(analyzer__name=analyzer)
        if unmatched:
            qs = qs.filter(state=ResultState.UNMATCHED)
        rows = [result_row(r) for r in qs.order_by("-id")[:limit]]
        record(Actor(None), "lab.cli_inbox", detail={"count": len(rows), "analyzer": analyzer})
        if as_json:
            self.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2))
            return
        for r in rows:
            self.stdout.write(
                f"{r['received_at'][:19]}  {(r['analyzer'] or '')[:18]:<18}  "
                f"{r['specimen_id']:<12}  {r['test_code']:<8} {r['value']:>10} {r['unit']:<8} "
                f"{r['flags']:<3} {r['status']:<10} {r['accession'] or 'UNMATCHED'}"
            )

    def results(self, accession: str, as_json: bool, include_all: bool) -> None:
        from benhan.lab.models import ResultState, Specimen

        specimen = (Specimen.objects.filter(accession=accession.strip())
                    .select_related("order__encounter__patient").first())  # fmt: skip
        if specimen is None:
            raise CommandError(f"no specimen with accession number {accession}")
        qs = specimen.results.select_related("analyzer", "message", "test", "specimen")
        if not include_all:
            qs = qs.filter(state=ResultState.CURRENT)
        rows = [result_row(r) for r in qs.order_by("test__sort_order", "id")]
        record(Actor(None), "lab.cli_results", obj=specimen,
               patient=specimen.order.encounter.patient, detail={"count": len(rows)})  # fmt: skip
        if as_json:
            out = {"accession": specimen.accession, "status": specimen.status,
                   "order": specimen.order.number, "results": rows}  # fmt: skip
            self.stdout.write(json.dumps(out, ensure_ascii=False, indent=2))
            return
        self.stdout.write(f"{specimen.accession}  {specimen.get_status_display()}")
        for r in rows:
            name = r["test"] or r["test_code"]
            self.stdout.write(f"  {name:<8} {r['value']:>10} {r['unit']:<8} "
                              f"{r['reference_range']:<14} {r['interpretation']}")  # fmt: skip

    def catalogue(self, facility_code: str | None) -> None:
        from benhan.accounts.models import Facility
        from benhan.lab.catalogue import load_catalogue

        facilities = Facility.objects.all()
        if facility_code:
            facilities = facilities.filter(code=facility_code)
        if not facilities:
            raise CommandError("no facility: create one first (benhan createsuperuser, /admin/)")
        for f in facilities:
            n = load_catalogue(f)
            self.stdout.write(f"{f.code} {f.name}: {n} tests and panels")
