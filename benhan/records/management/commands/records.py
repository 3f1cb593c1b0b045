"""`benhan records list|export|purge-originals`: records from the command line.

Command-line use is an administrator's (the IT person's) tool on the server; it is
audited like any other access, with no user attached.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from benhan.audit.chain import Actor, record
from benhan.records.models import DocumentStatus, Record, RecordStatus

STATUSES = ("open", "closed", *DocumentStatus.values)


class Command(BaseCommand):
    help = "List medical records, or export one record's sealed documents."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="sub", required=True)
        ls = sub.add_parser("list", help="records with their documents")
        ls.add_argument(
            "--status",
            choices=STATUSES,
            help="record status (open, closed) or a status all documents reached",
        )
        ls.add_argument("--json", action="store_true")
        ls.add_argument("--limit", type=int, default=1000)
        ex = sub.add_parser("export", help="a record's sealed PDFs and a manifest.json")
        ex.add_argument("number")
        ex.add_argument("--out", type=Path, required=True)
        pg = sub.add_parser(
            "purge-originals",
            help="remove original photos of filed paper after BENHAN_SCAN_ORIGINALS_DAYS",
        )
        pg.add_argument("--days", type=int, default=None, help="override the setting")
        pg.add_argument("--dry-run", action="store_true")

    def handle(self, *args, sub, **options):
        if sub == "list":
            self.list(options["status"], options["json"], options["limit"])
        elif sub == "purge-originals":
            self.purge(options["days"], options["dry_run"])
        else:
            self.export(options["number"], options["out"])

    def purge(self, days: int | None, dry_run: bool) -> None:
        from django.conf import settings

        from benhan.records.actions import do_purge_originals

        days = settings.SCAN_ORIGINALS_DAYS if days is None else days
        if days <= 0:
            self.stdout.write("Original photos are kept (BENHAN_SCAN_ORIGINALS_DAYS=0).")
            return
        r = do_purge_originals(Actor(None), older_than_days=days, dry_run=dry_run)
        verb = "would remove" if dry_run else "removed"
        self.stdout.write(
            f"{r.filings} filing(s) older than {days} days: {verb} {r.removed} original(s), "
            f"{r.bytes / 1e6:.1f} MB; {r.kept_shared} kept (also sent by a recent filing)."
        )
        for line in r.failed:
            self.stderr.write(f"NOT purged, the converted PDF does not check out: {line}")
        if r.failed:
            raise CommandError(f"{len(r.failed)} filing(s) kept: their PDF is damaged or missing")

    def list(self, status: str | None, as_json: bool, limit: int) -> None:
        qs = Record.objects.select_related("encounter__patient", "facility").prefetch_related(
            "documents__versions"
        )
        if status in (RecordStatus.OPEN, RecordStatus.CLOSED):
            qs = qs.filter(status=status)
        rows = []
        for rec in qs.order_by("number")[:limit]:
            docs = list(rec.documents.all())
            if status in DocumentStatus.values and (
                not docs or any(d.status != status for d in docs)
            ):
                continue
            rows.append(_record_row(rec, docs))
        record(Actor(None), "records.cli_list", detail={"status": status, "count": len(rows)})
        if as_json:
            self.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2))
            return
        for r in rows:
            self.stdout.write(
                f"{r['number']}  {r['mrn']}  {r['encounter_kind']:<10}  {r['status']:<6}  "
                f"{len(r['documents'])} document(s)"
            )

    def export(self, number: str, out: Path) -> None:
        from benhan.records.storage import default_store

        rec = Record.objects.filter(number=number).select_related("encounter__patient").first()
        if rec is None:
            raise CommandError(f"no record numbered {number}")
        docs = [d for d in rec.documents.all() if d.status == DocumentStatus.SEALED]
        if not docs:
            raise CommandError(f"record {number} has no sealed document")
        out.mkdir(parents=True, exist_ok=True)
        store = default_store()
        manifest = _record_row(rec, list(rec.documents.all()))
        manifest["exported"] = []
        for doc in docs:
            version = doc.current_version()
            data = store.get(version.current_sha256)  # verifies the hash
            name = f"{doc.number}-v{version.version}.pdf"
            (out / name).write_bytes(data)
            manifest["exported"].append(
                {
                    "file": name,
                    "sha256": version.current_sha256,
                    "form": doc.form_type,
                    "version": version.version,
                }
            )
        (out / "manifest.json").write_text(
            json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8"
        )
        record(
            Actor(None),
            "records.cli_export",
            obj=rec,
            patient=rec.encounter.patient,
            detail={"files": len(docs)},
        )
        self.stdout.write(f"exported {len(docs)} document(s) of {number} to {out}")


def _record_row(rec: Record, docs) -> dict:
    return {
        "number": rec.number,
        "facility": rec.facility.code,
        "mrn": rec.encounter.patient.mrn,
        "encounter_kind": rec.encounter.kind,
        "status": rec.status,
        "retention_class": rec.retention_class,
        "retain_until": rec.retain_until.isoformat() if rec.retain_until else None,
        "documents": [
            {
                "number": d.number,
                "form": d.form_type,
                "status": d.status,
                "versions": [
                    {
                        "version": v.version,
                        "sha256": v.current_sha256,
                        "rendered_sha256": v.rendered_sha256,
                    }
                    for v in d.versions.all()
                ],
            }
            for d in docs
        ],
    }
