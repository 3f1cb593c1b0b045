"""Server time of the patient page (/patients/<id>/) on a large registry.

    .venv/bin/python bench/patient_page.py                  # SQLite 100k, /tmp/bench-sqlite
    .venv/bin/python bench/patient_page.py --no-http        # in-process only

Seed the database first with bench/seed_bulk.py. Two measurements:

1. In-process, through Django's test Client (the whole middleware stack, the view,
   its audit write and the template; no network), logged in as the records officer
   (reads every patient) over --patients random patients, half of them with
   encounters, after a warm-up; then as the doctor over the patients with
   encounters in his departments. Queries per request are counted with
   CaptureQueriesContext on a separate pass, so counting costs nothing in the timings.
2. Over real HTTP: `benhan serve` (granian, 2 workers) on 127.0.0.1, one keep-alive
   http.client connection, logged in through the real login form, the same
   patients in turn, Accept-Encoding: gzip as a browser sends. Time to the last
   byte of the response.

Before measuring, benhan.core.db.analyze() refreshes the planner statistics, as
`benhan serve` does at start (the HTTP part's server does it again itself).

Target: p95 <= 50 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

TARGET_MS = 50.0


def pick_patients(n: int, seed: int) -> tuple[list[int], set[int], list[int]]:
    """n patient ids (half with encounters), the ids with encounters, warm-up ids."""
    from django.db.models import Max, Min

    from benhan.encounters.models import Encounter
    from benhan.patients.models import Patient

    rng = random.Random(seed)
    bounds = Patient.objects.aggregate(lo=Min("id"), hi=Max("id"))
    every = rng.sample(range(bounds["lo"], bounds["hi"] + 1), n // 2 + 40)
    with_enc = list(
        Encounter.objects.order_by().values_list("patient_id", flat=True).distinct()[:200_000]
    )
    chosen_enc = rng.sample(with_enc, min(len(with_enc), n - n // 2 + 20))
    ids = every[: n // 2] + chosen_enc[: n - n // 2]
    warm = every[n // 2 :] + chosen_enc[n - n // 2 :]
    rng.shuffle(ids)
    has = set(Encounter.objects.filter(patient_id__in=ids).values_list("patient_id", flat=True))
    return ids, has, warm


def in_process(ids: list[int], has_enc: set[int], warm: list[int]) -> dict:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from benhan.accounts.models import User

    out = {}
    for username, subset in (
        (common.RECORDS_USER, ids),
        (common.DOCTOR_USER, [i for i in ids if i in has_enc]),
    ):
        user = User.objects.get(username=username)
        client = Client()
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        for pk in warm:
            if username == common.RECORDS_USER or pk in has_enc:
                client.get(f"/patients/{pk}/")
        common.progress(f"in-process as {username}: {len(subset)} patients")
        samples, sizes = [], []
        group = {"with encounters": [], "without": []}
        for pk in subset:
            t = time.perf_counter()
            r = client.get(f"/patients/{pk}/")
            ms = (time.perf_counter() - t) * 1000
            if r.status_code != 200:
                sys.exit(f"/patients/{pk}/ as {username}: HTTP {r.status_code}")
            samples.append(ms)
            sizes.append(len(r.content))
            group["with encounters" if pk in has_enc else "without"].append(ms)
        queries = []
        example = None
        for pk in subset[:50]:
            with CaptureQueriesContext(connection) as ctx:
                client.get(f"/patients/{pk}/")
            queries.append(len(ctx.captured_queries))
            if example is None and pk in has_enc:
                example = [q["sql"][:200] for q in ctx.captured_queries]
        out[username] = {
            "all": common.summarize(samples),
            "groups": {k: common.summarize(v) for k, v in group.items() if v},
            "queries": {
                "min": min(queries),
                "max": max(queries),
                "mean": sum(queries) / len(queries),
            },
            "html_bytes_mean": sum(sizes) / len(sizes),
            "example_queries": example,
        }
    return out


def over_http(ids: list[int], warm: list[int], port: int) -> dict:
    env = dict(os.environ)
    with common.Server(port, env):
        common.progress(f"benhan serve on 127.0.0.1:{port}; logging in over HTTP")
        b = common.Browserish(port)
        b.login(common.RECORDS_USER, common.PASSWORD)
        for pk in warm:
            b.request("GET", f"/patients/{pk}/")
        common.progress(f"HTTP keep-alive loop over {len(ids)} patients")
        samples, wire = [], []
        for pk in ids:
            t = time.perf_counter()
            r, data = b.request("GET", f"/patients/{pk}/")
            ms = (time.perf_counter() - t) * 1000
            if r.status != 200:
                sys.exit(f"GET /patients/{pk}/: HTTP {r.status}")
            samples.append(ms)
            wire.append(len(data))
        return {
            "all": common.summarize(samples),
            "gzip_bytes_mean": sum(wire) / len(wire),
            "workers": 2,
            "threads": 4,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--port", type=int, default=8798)
    parser.add_argument("--no-http", action="store_true")
    args = parser.parse_args()

    hosts = os.environ.get("BENHAN_ALLOWED_HOSTS", "127.0.0.1,localhost")
    if "testserver" not in hosts.split(","):
        os.environ["BENHAN_ALLOWED_HOSTS"] = hosts + ",testserver"
    common.setup_django()
    from django.core.management import call_command

    from benhan.core.db import analyze
    from benhan.patients.models import Patient

    analyze()
    # The manifest storage needs the collected files (into BENHAN_DATA_DIR/static).
    call_command("collectstatic", interactive=False, verbosity=0)

    db = common.label()
    n = Patient.objects.count()
    if not n:
        sys.exit("no patients: run bench/seed_bulk.py first")
    common.progress(f"{db}: {n:,} patients; choosing {args.patients}")
    ids, has_enc, warm = pick_patients(args.patients, args.seed)
    result: dict = {"patients_in_db": n, "sample": len(ids), "with_encounters": len(has_enc)}
    result["in_process"] = inproc = in_process(ids, has_enc, warm)

    rows = []
    for user, r in inproc.items():
        a = r["all"]
        q = r["queries"]
        rows.append([f"in-process, {user}", a["n"], a["p50"], a["p95"], a["p99"], a["max"],
                     f"{q['min']}-{q['max']}"])  # fmt: skip
        for g, s in r["groups"].items():
            rows.append([f"  {g}", s["n"], s["p50"], s["p95"], s["p99"], s["max"], ""])
    if not args.no_http:
        from django.db import connections

        connections.close_all()
        result["http"] = h = over_http(ids, warm, args.port)
        a = h["all"]
        rows.append([f"HTTP keep-alive, {common.RECORDS_USER}", a["n"], a["p50"], a["p95"],
                     a["p99"], a["max"], ""])  # fmt: skip
    common.print_table(
        ["patient page", "n", "p50 ms", "p95 ms", "p99 ms", "max ms", "queries"],
        rows,
        title=f"/patients/<id>/ on {db}, {n:,} patients",
    )
    measured = [*inproc.values(), *([result["http"]] if "http" in result else [])]
    met = all(r["all"]["p95"] <= TARGET_MS for r in measured)
    print(f"target p95 <= {TARGET_MS:.0f} ms: {'MET' if met else 'MISSED'}")
    result["target_ms"] = TARGET_MS
    result["met"] = met
    common.save_result(f"patient_page-{db}", result)


if __name__ == "__main__":
    main()
