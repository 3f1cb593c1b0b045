"""benhan verify FILE.pdf [--json]: check every signature of a PDF; exit 0 only if all valid."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from benhan.signing.verify import verify_pdf


def _yes(value) -> str:
    return {True: "yes", False: "NO", None: "-"}[value]


class Command(BaseCommand):
    help = (
        "Verify the signatures of a PDF offline: integrity, trust in the facility root, "
        "timestamps, and changes after the seal. Exit status 0 only when all is valid."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="the PDF to check")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument(
            "--trust",
            action="append",
            default=[],
            metavar="ROOT.pem",
            help="trust only these root certificates (default: every facility root in "
            "the database)",
        )

    def handle(self, *args, file, json: bool, trust: list[str], **options):
        try:
            pdf = Path(file).read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from exc
        roots = _load_roots(trust) if trust else None
        report = verify_pdf(pdf, trust_roots=roots)
        if json:
            self.stdout.write(_json_dumps(report.as_dict()))
        else:
            self._print(file, report)
        if not report.ok:
            sys.exit(1)

    def _print(self, file, report) -> None:
        w = self.stdout.write
        w(f"{file}: {len(report.signatures)} signature(s)")
        for i, s in enumerate(report.signatures, 1):
            when = (
                timezone.localtime(s.signing_time).strftime("%d/%m/%Y %H:%M:%S %Z")
                if s.signing_time
                else "-"
            )
            kind = "seal" if s.is_seal else "signature"
            w(f"\n{i}. {kind} {s.field_name!r}: {s.signer_name}")
            role = ", ".join(x for x in (s.title, s.role) if x)
            if role:
                w(f"   role:      {role}")
            if s.practising_certificate:
                w(f"   practising certificate: {s.practising_certificate}")
            w(f"   time:      {when} ({s.time_source or 'unknown'})")
            w(f"   intact:    {_yes(s.intact)}")
            w(f"   trusted:   {_yes(s.trusted)}")
            w(f"   timestamp: {_yes(s.timestamp_valid)}")
            w(f"   changed after: {'yes' if s.modified_after else 'no'} ({s.modification_level})")
            if s.revoked_at:
                when_rev = timezone.localtime(s.revoked_at).strftime("%d/%m/%Y %H:%M")
                after = (
                    " (after signing: the signature stays valid)" if s.revoked_after_signing else ""
                )
                w(f"   certificate revoked {when_rev}{after}")
            for p in s.problems:
                w(f"   PROBLEM: {p}")
        if report.sealed:
            changed = (
                "CHANGED AFTER THE SEAL" if report.changed_after_seal else "nothing after the seal"
            )
            w(f"\nsealed: yes, {changed}")
        for p in report.problems:
            w(f"PROBLEM: {p}")
        w("\nVALID" if report.ok else "\nINVALID")


def _load_roots(paths: list[str]):
    from cryptography import x509

    roots = []
    for p in paths:
        data = Path(p).read_bytes()
        roots.extend(
            x509.load_pem_x509_certificates(data)
            if b"-----BEGIN" in data
            else [x509.load_der_x509_certificate(data)]
        )
    return roots


def _json_dumps(data) -> str:
    from django.core.serializers.json import DjangoJSONEncoder

    return json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2)
