"""`benhan serve`, the supervisor a clinic runs: the web server and the analyzer listeners
as child processes, on real ports. It answers on both, stops both on SIGTERM, and when
one part dies it stops the other and exits non-zero (so systemd restarts the whole)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.db import connection
from hl7.client import MLLPClient

from benhan.lab import hl7v2
from benhan.lab.models import Result, ResultState

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = [("glu", "Glucose", "6.1", "mmol/L", "3.9-6.4", "N")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return r.status == 200 and json.load(r) == {"status": "ok"}
    except OSError:
        return False


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _children(pid: int) -> dict[int, str]:
    """pid → command line of the processes whose parent is `pid` (from /proc)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out[int(entry.name)] = cmdline
    return out


@pytest.fixture
def serve(hl7_analyzer, tmp_path):
    """Start `benhan serve` on free ports, with an HL7 analyzer configured; yields
    (process, web port, analyzer port). Killed at the end whatever happened."""
    hl7_analyzer.port = _free_port()
    hl7_analyzer.host = "127.0.0.1"
    hl7_analyzer.save()
    web = _free_port()
    env = {**os.environ, "BENHAN_DB_NAME": str(connection.settings_dict["NAME"]),
           "BENHAN_DATA_DIR": str(tmp_path)}  # fmt: skip
    argv = [sys.executable, "-m", "benhan.cli", "serve", "--host", "127.0.0.1", "--port",
            str(web), "--workers", "1", "--threads", "2", "--no-collectstatic"]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,  # noqa: S603 - our argv
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        _wait(lambda: _answers(web) and _listening(hl7_analyzer.port), timeout=60)
        yield proc, web, hl7_analyzer.port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for child in _children(proc.pid):
            os.kill(child, signal.SIGKILL)


def test_serve_runs_the_web_and_the_analyzers_and_stops_both(serve, specimens):
    proc, web, analyzer_port = serve
    serum = specimens["serum"]
    with MLLPClient("127.0.0.1", analyzer_port) as client:
        ack = client.send_message(hl7v2.build_oru(serum.accession, ROWS).decode())
    text = ack.decode() if isinstance(ack, bytes) else ack
    assert "\rMSA|AA|" in text.replace("\n", "\r")
    assert Result.objects.filter(specimen=serum, state=ResultState.CURRENT).count() == 1
    children = _children(proc.pid)
    assert any("granian" in c for c in children.values())
    assert any("lab listen" in c for c in children.values())

    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "Stopped." in out
    assert not _answers(web) and not _listening(analyzer_port)
    assert not any(Path(f"/proc/{pid}").exists() for pid in children)


def test_when_the_listeners_die_serve_stops_the_web_and_fails(serve):
    proc, web, _ = serve
    [listener] = [pid for pid, c in _children(proc.pid).items() if "lab listen" in c]
    os.kill(listener, signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1, out
    assert "analyzers exited with code -9; stopping" in out
    assert not _answers(web)
