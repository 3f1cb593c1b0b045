import sys

from django.core.management.base import BaseCommand, CommandError

from benhan.audit import chain


class Command(BaseCommand):
    help = "Audit log tools. `benhan audit verify` checks the hash chain."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="sub", required=True)
        sub.add_parser("verify", help="check that no event was changed, inserted or deleted")

    def handle(self, *args, sub, **options):
        def progress(n):
            sys.stderr.write(f"\r  checked {n:,} events")
            sys.stderr.flush()

        count, problems = chain.verify(progress=progress if sys.stderr.isatty() else None)
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        if problems:
            for p in problems:
                self.stdout.write(f"BROKEN {p}")
            raise CommandError(f"audit chain broken: {len(problems)} problem(s) in {count} events")
        self.stdout.write(f"OK: {count} events, chain intact")
