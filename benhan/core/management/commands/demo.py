"""`benhan demo`: seed the demo clinic (see benhan.core.demo), then print its logins."""

from __future__ import annotations

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
        "Create a demo district medical centre with staff, patients and four months of "
        "encounters. Safe to run again: an existing demo clinic is left as it is."
    )

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=count, default=demo.DEFAULT_PATIENTS, metavar="N")
        parser.add_argument(
            "--encounters", type=count, default=demo.DEFAULT_ENCOUNTERS, metavar="N"
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=demo.DEFAULT_SEED,
            metavar="N",
            help="random seed: the same seed gives the same clinic (relative to today)",
        )

    def handle(self, *args, patients, encounters, seed, **options):
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
        try:
            result = demo.seed(
                patients=patients, encounters=encounters, seed=seed, progress=progress
            )
        except demo.DemoError as e:
            raise CommandError(str(e)) from e
        if result.created:
            analyze()
            self.stdout.write(
                f"Seeded {result.facility}: {result.patients} patients, "
                f"{result.encounters} encounters in {time.monotonic() - started:.1f} s."
            )
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
            "Administrators set up two-factor authentication (TOTP) at their first login."
        )
