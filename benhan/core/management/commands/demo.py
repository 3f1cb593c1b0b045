"""`benhan demo`: seed the demo clinic (see benhan.core.demo), then print its logins."""

from __future__ import annotations

import logging
import time

from django.core.management.base import BaseCommand, CommandError

from benhan.core import demo
from benhan.core.db import analyze


def count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


class Command(BaseCommand):
    help = (
        "Create a demo district medical centre with staff, patients, four months of "
        "encounters and medical records in every state, signed and sealed for real. Safe to "
        "run again: an existing demo clinic is left as it is."
    )

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=count, default=demo.DEFAULT_PATIENTS, metavar="N")
        parser.add_argument(
            "--encounters", type=count, default=demo.DEFAULT_ENCOUNTERS, metavar="N"
        )
        parser.add_argument(
            "--records",
            type=count,
            default=demo.DEFAULT_RECORDS,
            metavar="N",
            help="medical records to create, in every state (each signature takes ~0.1 s)",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=demo.DEFAULT_SEED,
            metavar="N",
            help="random seed: the same seed gives the same clinic (relative to today)",
        )

    def handle(self, *args, patients, encounters, records, seed, **options):
        tty = self.stderr.isatty()
        last = {"label": "", "at": 0.0}

        def progress(label: str, done: int, total: int) -> None:
            # One counter line per phase: rewritten in place on a terminal, otherwise
            # printed every 10% so logs stay short.
            step = max(1, total // 10)
            if tty:
                now = time.monotonic()
                if done == total or now - last["at"] > 0.1 or label != last["label"]:
                    self.stderr.write(f"\r{label} {done}/{total}", ending="")
                    last["at"] = now
                if done == total:
                    self.stderr.write("")
            elif done == total or done % step == 0:
                self.stderr.write(f"{label} {done}/{total}")
            last["label"] = label

        started = time.monotonic()
        # pyHanko warns on every signature that it embeds validation data without fetching
        # it (by design: the CRLs come from the database); a hundred such lines are noise.
        logging.getLogger("pyhanko").setLevel(logging.ERROR)
        try:
            result = demo.seed(
                patients=patients,
                encounters=encounters,
                seed=seed,
                progress=progress,
                records=records,
            )
        except demo.DemoError as e:
            raise CommandError(str(e)) from e
        if result.created:
            analyze()
            self.stdout.write(
                f"Seeded {result.facility}: {result.patients} patients, "
                f"{result.encounters} encounters, {sum(result.records.values())} records "
                f"in {time.monotonic() - started:.1f} s."
            )
            if result.records:
                states = ", ".join(
                    f"{result.records[s]} {s}"
                    for s in demo.demo_records.STATES[::-1]
                    if result.records.get(s)
                )
                self.stdout.write(f"Records: {states}.")
        else:
            self.stdout.write(
                f"The demo clinic is already seeded ({result.facility}); nothing was changed. "
                "Passwords are as seeded unless someone changed them."
            )
        self.stdout.write("")
        self.print_logins(demo.logins(result.facility))

    def print_logins(self, rows: list[dict[str, str]]) -> None:
        columns = [
            ("username", "Username"),
            ("password", "Password"),
            ("role", "Role"),
            ("departments", "Departments"),
            ("name", "Name"),
        ]
        widths = {
            key: max(len(title), *(len(r[key]) for r in rows)) if rows else len(title)
            for key, title in columns
        }

        def line(values: dict[str, str]) -> str:
            return "  ".join(values[k].ljust(widths[k]) for k, _ in columns).rstrip()

        self.stdout.write(line(dict(columns)))
        self.stdout.write(line({k: "-" * widths[k] for k, _ in columns}))
        for r in rows:
            self.stdout.write(line(r))
        self.stdout.write("")
        self.stdout.write(
            f"Signing PIN of every doctor, nurse and lab technician: {demo.SIGNING_PIN} "
            "(the records officer `khth` seals without a PIN)."
        )
        self.stdout.write(
            "Laboratory: analyzers listen on 127.0.0.1:2575 (HL7) and 127.0.0.1:2576 (ASTM) "
            "while `benhan serve` runs; `benhan analyzers simulate` sends the results of "
            "the specimens waiting for them."
        )
        self.stdout.write(
            "Administrators set up two-factor authentication (TOTP) at their first login."
        )
