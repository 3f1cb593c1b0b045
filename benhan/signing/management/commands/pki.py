"""benhan pki init | issue USERNAME | revoke USERNAME --reason R | export-root --out FILE."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from benhan.accounts.models import Facility, User
from benhan.audit.chain import Actor
from benhan.signing import pki


class Command(BaseCommand):
    help = "The facility's certificate authority: set up, issue and revoke staff certificates."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser(
            "init", help="create the root CA, issuing CA, seal and TSA of every facility"
        )
        issue = sub.add_parser("issue", help="issue a signing certificate to a staff member")
        issue.add_argument("username")
        issue.add_argument("--pin-stdin", action="store_true", help="read the PIN from stdin")
        issue.add_argument("--practising-certificate", default=None)
        revoke = sub.add_parser("revoke", help="revoke a staff member's signing certificate")
        revoke.add_argument("username")
        revoke.add_argument("--reason", required=True, choices=sorted(pki.REASONS))
        export = sub.add_parser("export-root", help="write the facility root certificate (PEM)")
        export.add_argument("--out", required=True)
        export.add_argument("--facility", help="facility code (default: every facility)")

    def handle(self, *args, action, **options):
        getattr(self, f"do_{action.replace('-', '_')}")(**options)

    def do_init(self, **options):
        facilities = list(Facility.objects.order_by("pk"))
        if not facilities:
            raise CommandError("no facility yet: create one first")
        for facility in facilities:
            pki.ensure_facility_pki(facility)
            root = pki.root_ca(facility)
            self.stdout.write(
                f"{facility.code} {facility.name}: root CA "
                f"{root.certificate.fingerprint(_sha256()).hex(':')[:47]}…"
            )

    def do_issue(self, *, username, pin_stdin, practising_certificate, **options):
        user = _user(username)
        if pin_stdin:
            pin = sys.stdin.readline().strip()
        else:
            pin = getpass.getpass("Signing PIN (6–12 digits): ")
            if getpass.getpass("Again: ") != pin:
                raise CommandError("the PINs differ")
        try:
            cred = pki.issue_staff_credential(user, pin, practising_certificate)
        except pki.SigningError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"issued certificate {cred.serial} to {user.full_name}, valid until "
            f"{cred.not_after:%Y-%m-%d}"
        )

    def do_revoke(self, *, username, reason, **options):
        user = _user(username)
        cred = pki.active_credential(user)
        if cred is None:
            raise CommandError(f"{username} has no active signing certificate")
        pki.revoke(cred, reason, Actor(None))
        self.stdout.write(f"revoked certificate {cred.serial} of {user.full_name} ({reason})")

    def do_export_root(self, *, out, facility=None, **options):
        from benhan.signing.models import CertificateAuthority

        roots = CertificateAuthority.objects.filter(kind="root").order_by("pk")
        if facility:
            roots = roots.filter(facility__code=facility)
        pems = [ca.cert_pem for ca in roots]
        if not pems:
            raise CommandError("no root certificate yet: run `benhan pki init`")
        Path(out).write_text("".join(pems), encoding="ascii")
        self.stdout.write(f"wrote {len(pems)} root certificate(s) to {out}")


def _user(username: str) -> User:
    try:
        return User.objects.get(username=username)
    except User.DoesNotExist as exc:
        raise CommandError(f"no staff member {username!r}") from exc


def _sha256():
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()
