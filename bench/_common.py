"""Shared helpers for the benchmark scripts: environment, Django set-up, statistics,
result tables and the raw JSON results kept in bench/results/ (gitignored).

The scripts never touch the developer's own database: unless BENHAN_DATA_DIR is set
they use bench-sqlite in the temporary directory (tempfile.gettempdir(), /tmp on
Linux), and on PostgreSQL they default to the database
benhan_bench, refuse the database named `test` (CI's) and refuse non-loopback hosts.
"""

from __future__ import annotations

import gzip
import http.client
import json
import math
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
VENV_BIN = Path(sys.executable).parent
BENHAN = str(VENV_BIN / "benhan")

# Throwaway benchmark data, in the temporary directory (/tmp on Linux).
TMP = Path(tempfile.gettempdir())
DEFAULT_SQLITE_DIR = str(TMP / "bench-sqlite")
DEFAULT_PG_DIR = str(TMP / "bench-pg")
DEFAULT_PG_DB = "benhan_bench"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}

# Accounts created by seed_bulk.py (and page_weight.py on its small database).
RECORDS_USER = "bench_records"
DOCTOR_USER = "bench_doctor"
PASSWORD = "bench-Password-2026"  # noqa: S105 - a throwaway account in a throwaway database


def bench_env() -> dict[str, str]:
    """Fill in the BENHAN_* defaults for a benchmark run and check they are safe."""
    db = os.environ.setdefault("BENHAN_DB", "sqlite")
    if db == "postgres":
        os.environ.setdefault("BENHAN_DATA_DIR", DEFAULT_PG_DIR)
        os.environ.setdefault("BENHAN_DB_NAME", DEFAULT_PG_DB)
        name = os.environ["BENHAN_DB_NAME"]
        if name in {"test", "benhan"}:
            sys.exit(f"refusing to benchmark in the PostgreSQL database {name!r}")
        host = os.environ.setdefault("BENHAN_DB_HOST", "127.0.0.1")
        if host not in LOOPBACK and not host.startswith("/"):
            sys.exit(f"benchmarks only touch loopback; BENHAN_DB_HOST is {host!r}")
    else:
        os.environ.setdefault("BENHAN_DATA_DIR", DEFAULT_SQLITE_DIR)
    data_dir = Path(os.environ["BENHAN_DATA_DIR"]).resolve()
    if data_dir == (ROOT / "var").resolve():
        sys.exit("refusing to benchmark in the development data directory var/")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benhan.settings")
    os.environ.setdefault("BENHAN_LOG_LEVEL", "WARNING")
    return dict(os.environ)


def setup_django() -> None:
    bench_env()
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def label() -> str:
    """A short name for the database under test, e.g. 'sqlite' or 'postgres'."""
    return os.environ.get("BENHAN_DB", "sqlite")


# --- Statistics -----------------------------------------------------------------


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    k = max(0, math.ceil(p / 100 * len(sorted_values)) - 1)
    return sorted_values[k]


def summarize(samples_ms: list[float]) -> dict[str, float]:
    s = sorted(samples_ms)
    return {
        "n": len(s),
        "p50": percentile(s, 50),
        "p95": percentile(s, 95),
        "p99": percentile(s, 99),
        "mean": statistics.fmean(s) if s else float("nan"),
        "max": s[-1] if s else float("nan"),
    }


# --- Output ---------------------------------------------------------------------


def fmt(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def print_table(headers: list[str], rows: list[list], title: str = "") -> None:
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]  # fmt: skip
    if title:
        print(f"\n{title}")
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    sys.stdout.flush()


def progress(message: str) -> None:
    # UTC: Django sets TZ to the clinic's zone in the scripts that load it, not in others.
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def machine() -> dict[str, str | int]:
    model = platform.processor() or platform.machine()
    try:
        lscpu = shutil.which("lscpu") or "lscpu"
        out = subprocess.run([lscpu], capture_output=True, text=True, check=False).stdout  # noqa: S603 - fixed argv
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import sqlite3

    info: dict[str, str | int] = {
        "cpu": model,
        "cores": os.cpu_count() or 0,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "host": socket.gethostname(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    try:
        mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
        info["memory_gb"] = round(int(mem) / 1024 / 1024)
    except (OSError, IndexError, ValueError):
        pass
    return info


def save_result(name: str, data: dict) -> Path:
    """Write bench/results/<name>.json (latest) and a timestamped copy."""
    RESULTS_DIR.mkdir(exist_ok=True)
    data = {
        "benchmark": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "env": {
            k: v
            for k, v in os.environ.items()
            if k.startswith("BENHAN_") and "SECRET" not in k and "PASSWORD" not in k
        },
        **data,
    }
    text = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS_DIR / f"{name}.json").write_text(text, encoding="utf-8")
    (RESULTS_DIR / f"{name}-{stamp}.json").write_text(text, encoding="utf-8")
    print(f"\nraw results: {RESULTS_DIR / (name + '.json')}")
    return RESULTS_DIR / f"{name}.json"


# --- Running the real server -------------------------------------------------------


def free_port(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Server:
    """`benhan serve` as a subprocess on loopback, stopped with SIGTERM on exit."""

    def __init__(self, port: int, env: dict[str, str], workers: int = 2, threads: int = 4):
        self.port = port
        self.env = env
        self.workers = workers
        self.threads = threads
        self.proc: subprocess.Popen | None = None
        self.log = None

    def __enter__(self) -> Server:
        if not free_port(self.port):
            sys.exit(f"port {self.port} is in use")
        RESULTS_DIR.mkdir(exist_ok=True)
        self.log = (RESULTS_DIR / f"server-{self.port}.log").open("w")
        argv = [
            BENHAN, "serve", "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", str(self.workers), "--threads", str(self.threads),
        ]  # fmt: skip
        self.proc = subprocess.Popen(  # noqa: S603 - our own console script
            argv, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT
        )
        deadline = time.monotonic() + 60
        import http.client

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"benhan serve exited with {self.proc.returncode}; see {self.log.name}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    conn.close()
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        self.__exit__(None, None, None)
        sys.exit("benhan serve did not answer /healthz within 60 s")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log:
            self.log.close()


class Browserish:
    """One keep-alive connection with a cookie jar just big enough for Django."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: str | None = None, headers=None):
        h = {"Accept-Encoding": "gzip", "Connection": "keep-alive"}
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            h["Content-Type"] = "application/x-www-form-urlencoded"
        h.update(headers or {})
        self.conn.request(method, path, body=body, headers=h)
        r = self.conn.getresponse()
        data = r.read()
        for name, value in r.getheaders():
            if name.lower() == "set-cookie":
                k, _, v = value.split(";", 1)[0].partition("=")
                self.cookies[k.strip()] = v.strip()
        return r, data

    def login(self, username: str, password: str) -> None:
        r, data = self.request("GET", "/accounts/login/")
        if r.getheader("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        m = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', data)
        if not m:
            sys.exit("no CSRF token on the login page")
        body = urllib.parse.urlencode(
            {
                "csrfmiddlewaretoken": m.group(1).decode(),
                "username": username,
                "password": password,
                "next": "/",
            }
        )
        r, _ = self.request("POST", "/accounts/login/", body)
        if r.status != 302 or "sessionid" not in self.cookies:
            sys.exit(f"login failed: HTTP {r.status}")


def have(cmd: str) -> bool:
    return shutil.which(cmd) is not None
