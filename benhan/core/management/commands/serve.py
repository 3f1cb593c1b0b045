"""Run the clinic: the web server and the analyzer listeners (later, the worker).

`benhan serve` is a small supervisor. It starts each part as a child process,
forwards Ctrl-C / SIGTERM to all of them, waits for them to finish their current
work, and exits. If one part dies, the others are stopped too and the exit code is
non-zero, so systemd (or the operator) sees the failure and restarts the whole.
"""

from __future__ import annotations

import io
import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from benhan.core.db import analyze

# Seconds the children get to finish after SIGTERM before they are killed.
GRACE = 15


def parts(host: str, port: int, workers: int, threads: int) -> dict[str, list[str]]:
    """The processes `serve` runs. A later part (the background worker) joins here."""
    return {
        "web": [
            sys.executable, "-m", "granian",
            "--interface", "wsgi",
            "--host", host, "--port", str(port),
            "--workers", str(workers),
            "--blocking-threads", str(threads),
            "--no-ws",
            "--log-level", "warning",
            "benhan.wsgi:application",
        ],
        # One listener per active analyzer (HL7 over MLLP, ASTM over TCP or serial),
        # in their own process so a busy analyzer never slows the pages.
        "analyzers": [sys.executable, "-m", "benhan.cli", "lab", "listen"],
    }  # fmt: skip


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens there.

    granian binds with SO_REUSEPORT, so a second `benhan serve` on the same port
    would start without error and share the traffic with the first, old code and
    new mixed. Refuse instead.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR: a port left in TIME_WAIT by a restart is free; a listener is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


class Command(BaseCommand):
    help = "Run the clinic: web server and analyzer listeners."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.SERVE_HOST)
        parser.add_argument("--port", type=int, default=settings.SERVE_PORT)
        parser.add_argument("--workers", type=int, default=settings.SERVE_WORKERS)
        parser.add_argument("--threads", type=int, default=settings.SERVE_THREADS)
        parser.add_argument(
            "--no-collectstatic",
            action="store_true",
            help="skip collecting static files (already done at deploy time)",
        )

    def handle(self, *args, host, port, workers, threads, no_collectstatic, **options):
        if port_in_use(host, port):
            raise CommandError(
                f"{host}:{port} is already in use (is Bệnh Án already running?). "
                "Stop it, or choose another port with --port or BENHAN_PORT."
            )
        if not no_collectstatic:
            call_command("collectstatic", interactive=False, verbosity=0)
        call_command("check", stdout=io.StringIO())  # raises on errors, quiet otherwise
        analyze()
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

        children: dict[str, subprocess.Popen] = {}
        for name, argv in parts(host, port, workers, threads).items():
            # A new process group: the terminal's Ctrl-C reaches only us, and we
            # decide the order of shutdown.
            children[name] = subprocess.Popen(argv, start_new_session=True)  # noqa: S603 - our argv
        self.stdout.write(f"Bệnh Án is running on http://{host}:{port}/  (Ctrl-C to stop)")
        self.stdout.flush()

        failed = None
        while not stopping:
            for name, proc in children.items():
                if proc.poll() is not None:
                    failed = name
                    stopping = True
                    break
            time.sleep(0.2)

        if failed:
            self.stderr.write(f"{failed} exited with code {children[failed].returncode}; stopping")
        self.stdout.write("Stopping…")
        for proc in children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE
        for proc in children.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.stdout.write("Stopped.")
        if failed:
            sys.exit(1)
