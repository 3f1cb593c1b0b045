"""`benhan analyzers list|simulate`.

    benhan analyzers list
    benhan analyzers simulate [--analyzer NAME] [--accession N] [--limit N] [--no-query] [--seed N]

`simulate` plays the configured analyzers against the running listeners (`benhan
serve`): for every specimen waiting for results it sends realistic values over the
real protocol — HL7 over MLLP, ASTM over an E1381 link — after a host query.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "The configured analyzers; a simulator that sends results for pending specimens."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="sub", required=True)
        sub.add_parser("list", help="configured analyzers")
        sim = sub.add_parser("simulate", help="send realistic results for pending specimens")
        sim.add_argument("--analyzer", help="only this analyzer (name)")
        sim.add_argument("--accession", help="only this specimen")
        sim.add_argument("--limit", type=int, default=50, help="specimens per analyzer")
        sim.add_argument("--no-query", action="store_true", help="skip the host query")
        sim.add_argument("--seed", type=int, default=None)

    def handle(self, *args, sub, **o):
        from benhan.lab.models import Analyzer

        if sub == "list":
            for a in Analyzer.objects.order_by("name"):
                where = a.serial_device if a.transport == "serial" else f"{a.host}:{a.port}"
                state = "active" if a.active else "off"
                self.stdout.write(f"{a.name:<24} {a.get_protocol_display():<32} {where:<22} "
                                  f"{a.codes.count():>3} codes  {state}")  # fmt: skip
            return
        from benhan.lab.simulate import simulate

        try:
            sent = simulate(analyzer_name=o["analyzer"], accession=o["accession"],
                            limit=o["limit"], query=not o["no_query"], seed=o["seed"])  # fmt: skip
        except ConnectionRefusedError as e:
            raise CommandError(f"An analyzer listener is not running ({e}). Start "
                               "`benhan serve` (or `benhan lab listen`) first.") from e  # fmt: skip
        if not sent:
            self.stdout.write("No specimen is waiting for results from a configured analyzer.")
        for s in sent:
            self.stdout.write(f"{s.analyzer}: {s.accession} — {s.tests} result(s) sent, "
                              f"answer {s.reply}")  # fmt: skip
