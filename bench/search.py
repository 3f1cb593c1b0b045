"""Patient-search latency through benhan.patients.search.search(), the function the
search view calls, over a realistic query mix, on the database as the application
keeps it.

    .venv/bin/python bench/search.py              # SQLite, /tmp/bench-sqlite
    BENHAN_DB=postgres BENHAN_DB_NAME=benhan_bench .venv/bin/python bench/search.py

Seed the database first with bench/seed_bulk.py (or apply new migrations to a seeded
one with `benhan migrate`). The mix (300 queries by default, drawn from real rows of
the database with a fixed seed):

    full      full names without accents            "nguyen thi thu ha"
    accented  full names as typed with accents      "Nguyễn Thị Thu Hà"
    fam+given family and given name                 "nguyen ha"
    given     a common given name alone (>= 3 chars) "hoa", "linh"
    prefix    what htmx sends while a name is typed "ngu", "nguyen", "nguyen v", ...
    rare      rare names that exist, and misspellings that match nobody
    mrn, phone, cccd, card  identifiers

Before measuring, benhan.core.db.analyze() refreshes the planner statistics, as
`benhan serve` does at start (and `benhan migrate` after migrating). The name indexes
of migration patients.0003 must exist (SQLite: the FTS5 table patient_name_fts;
PostgreSQL: the GIN index patient_name_key_tsv beside the trigram index).

One warm-up pass, then --passes measured passes, each query timed in-process with
time.perf_counter (Python, ORM and database time; no HTTP, no template, no audit
write). Targets: p95 <= 50 ms on SQLite at 100k patients, <= 20 ms on PostgreSQL
at 1M.

Then a sanity check: every query of the mix once more, its hits compared with what
the plain rule gives (names: LIKE '% word%' for every word of the query; identifiers:
one OR query over MRN/phone prefix, CCCD, card key), up to the page limit.
With --explain N, the plans of the slowest query of the N slowest kinds are printed
(EXPLAIN QUERY PLAN on SQLite, EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL).
With --without-stats (SQLite), the mix is measured once more with the statistics
dropped, to show what they are worth; analyze() restores them afterwards.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

TARGET_MS = {"sqlite": 50.0, "postgres": 20.0}

MIX = [
    ("full", 50), ("accented", 20), ("fam+given", 40), ("given", 30), ("prefix", 60),
    ("rare", 30), ("mrn", 20), ("phone", 20), ("cccd", 20), ("card", 10),
]  # fmt: skip


def sample_patients(n: int, rng: random.Random) -> list:
    from django.db.models import Max, Min

    from benhan.patients.models import Patient

    bounds = Patient.objects.aggregate(lo=Min("id"), hi=Max("id"))
    ids = rng.sample(range(bounds["lo"], bounds["hi"] + 1), min(n, bounds["hi"] - bounds["lo"]))
    found = {p.pk: p for p in Patient.objects.filter(pk__in=ids)}
    return [found[i] for i in ids if i in found]


def typo(word: str, rng: random.Random) -> str:
    """A misspelling that matches no real name: double a letter and add a stray one."""
    i = rng.randrange(len(word))
    return word[: i + 1] + word[i] + "x" + word[i + 1 :]


def build_mix(total: int, seed: int) -> list[tuple[str, str]]:
    from benhan.lib.vntext import search_key
    from benhan.patients.models import Patient

    sys.path.insert(0, str(common.BENCH_DIR))
    from seed_bulk import GIVEN_F, GIVEN_M, GIVEN_RARE

    rng = random.Random(seed)
    scale = total / sum(n for _, n in MIX)
    counts = {k: max(1, round(n * scale)) for k, n in MIX}
    patients = sample_patients(sum(counts.values()) * 2, rng)
    pool = iter(patients)
    queries: list[tuple[str, str]] = []

    def words(p) -> list[str]:
        return search_key(p.full_name).split()

    for _ in range(counts["full"]):
        queries.append(("full", " ".join(words(next(pool)))))
    for _ in range(counts["accented"]):
        queries.append(("accented", next(pool).full_name))
    for _ in range(counts["fam+given"]):
        w = words(next(pool))
        queries.append(("fam+given", f"{w[0]} {w[-1]}"))
    common_given = [search_key(g).strip() for g in GIVEN_M[:30] + GIVEN_F[:30]]
    common_given = sorted({g for g in common_given if len(g) >= 3})
    for _ in range(counts["given"]):
        queries.append(("given", rng.choice(common_given)))
    # Typing: each name gives the prefixes a debounced search box sends.
    prefix: list[str] = []
    while len(prefix) < counts["prefix"]:
        w = words(next(pool))
        key = " ".join(w)
        cuts = {3, len(w[0])}
        if len(w) > 1:
            cuts |= {len(w[0]) + 2, len(w[0]) + 1 + len(w[1])}
        if len(w) > 2:
            cuts.add(len(w[0]) + len(w[1]) + 3)
        cuts.add(len(key))
        for cut in sorted(c for c in cuts if 3 <= c <= len(key)):
            prefix.append(key[:cut])
    queries += [("prefix", q) for q in prefix[: counts["prefix"]]]
    # Rare: rare given names alone and with a family name; misspellings; no hit.
    rare_present = list(
        Patient.objects.filter(
            name_key__regex=r" (" + "|".join(search_key(g).strip() for g in GIVEN_RARE) + r")$"
        )
        .order_by("id")
        .values_list("name_key", flat=True)[:200]
    )
    for i in range(counts["rare"]):
        if i % 2 == 0 and rare_present:
            w = rng.choice(rare_present).split()
            queries.append(("rare", w[-1] if i % 4 == 0 else f"{w[0]} {w[-1]}"))
        else:
            w = words(next(pool))
            queries.append(("rare", f"{w[0]} {typo(w[-1], rng)}"))
    ident = [p for p in patients if p.phone and p.cccd and p.insurance_number]
    rng.shuffle(ident)
    it = iter(ident)
    for _ in range(counts["mrn"]):
        queries.append(("mrn", next(it).mrn))
    for i in range(counts["phone"]):
        phone = next(it).phone
        # Some typed with spaces, some in +84 form, a few as a prefix.
        if i % 4 == 1:
            phone = f"{phone[:4]} {phone[4:7]} {phone[7:]}"
        elif i % 4 == 2:
            phone = "+84" + phone[1:]
        elif i % 4 == 3:
            phone = phone[:7]
        queries.append(("phone", phone))
    for _ in range(counts["cccd"]):
        queries.append(("cccd", next(it).cccd))
    for _ in range(counts["card"]):
        queries.append(("card", next(it).insurance_number))
    rng.shuffle(queries)
    return queries


# --- Measuring --------------------------------------------------------------------------


def run_mix(fn, facility_id: int, mix, passes: int, what: str):
    """Time fn(facility_id, q) for every query; returns ([(kind, q, ms, hits)], warmup_s)."""
    t = time.perf_counter()
    for _, q in mix:
        fn(facility_id, q)
    warm = time.perf_counter() - t
    common.progress(f"{what}: warm-up pass {warm:.1f} s; measuring {passes} pass(es)")
    out = []
    for _ in range(passes):
        for kind, q in mix:
            t = time.perf_counter()
            found, _problem = fn(facility_id, q)
            ms = (time.perf_counter() - t) * 1000
            out.append((kind, q, ms, len(found)))
    return out, warm


def report(samples, title: str, target: float) -> dict:
    by_kind: dict[str, list] = defaultdict(list)
    for kind, _q, ms, hits in samples:
        by_kind[kind].append((ms, hits))
    rows = []
    for kind, _n in MIX:
        if kind not in by_kind:
            continue
        st = common.summarize([ms for ms, _ in by_kind[kind]])
        hits = sum(h for _, h in by_kind[kind]) / len(by_kind[kind])
        rows.append([kind, st["n"], st["p50"], st["p95"], st["p99"], st["max"], round(hits, 1)])
    overall = common.summarize([ms for _, _, ms, _ in samples])
    rows.append(["ALL", overall["n"], overall["p50"], overall["p95"], overall["p99"],
                 overall["max"], round(sum(s[3] for s in samples) / len(samples), 1)])  # fmt: skip
    common.print_table(
        ["query kind", "n", "p50 ms", "p95 ms", "p99 ms", "max ms", "avg hits"], rows, title
    )
    met = overall["p95"] <= target
    print(f"target p95 <= {target:.0f} ms: {'MET' if met else 'MISSED'} ({overall['p95']:.1f} ms)")
    return {
        "overall": overall,
        "by_kind": {
            r[0]: dict(zip(["n", "p50", "p95", "p99", "max", "avg_hits"], r[1:], strict=True))
            for r in rows
        },
        "target_ms": target,
        "met": met,
    }


def slowest(samples, n: int) -> list[tuple[str, str, float, int]]:
    best: dict[str, tuple] = {}
    for s in samples:
        if s[1] not in best or s[2] > best[s[1]][2]:
            best[s[1]] = s
    return sorted(best.values(), key=lambda s: -s[2])[:n]


def worst_per_kind(samples, n: int):
    """The slowest query of each of the n slowest kinds: plans worth reading."""
    per: dict[str, tuple] = {}
    for s in samples:
        if s[0] not in per or s[2] > per[s[0]][2]:
            per[s[0]] = s
    return sorted(per.values(), key=lambda s: -s[2])[:n]


def explain(fn, facility_id: int, worst) -> list[dict]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    plans = []
    for kind, q, ms, hits in worst:
        with CaptureQueriesContext(connection) as ctx:
            fn(facility_id, q)
        n = len(ctx.captured_queries)
        for i, captured in enumerate(ctx.captured_queries, 1):
            sql = captured["sql"]
            with connection.cursor() as c:
                if connection.vendor == "sqlite":
                    c.execute("EXPLAIN QUERY PLAN " + sql)
                    plan = "\n".join(f"  {r[-1]}" for r in c.fetchall())
                else:
                    c.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                    plan = "\n".join(f"  {r[0]}" for r in c.fetchall())
            which = f" (SQL query {i} of {n})" if n > 1 else ""
            print(f"\n{kind} {q!r}: {ms:.1f} ms, {hits} hits{which}\n  {sql[:300]}\n{plan}")
            plans.append({"kind": kind, "query": q, "ms": ms, "sql": sql, "plan": plan})
    return plans


# --- The application's indexes and statistics ----------------------------------------

NAME_INDEX = {
    "sqlite": ("patient_name_fts", "SELECT 1 FROM sqlite_master WHERE name = %s"),
    "postgres": ("patient_name_key_tsv", "SELECT 1 FROM pg_indexes WHERE indexname = %s"),
}
IDENTIFIER_KINDS = {"mrn", "phone", "cccd", "card"}


def check_name_index(db: str) -> str:
    from django.db import connection

    name, sql = NAME_INDEX[db]
    with connection.cursor() as c:
        c.execute(sql, [name])
        if c.fetchone() is None:
            sys.exit(f"{name} is missing: run `benhan migrate` on this database first")
    return name


def analyze() -> float:
    """What `benhan serve` runs at start; the planner reads the result on connecting."""
    from django.db import connection

    from benhan.core.db import analyze as app_analyze

    t = time.perf_counter()
    app_analyze()
    connection.close()
    return time.perf_counter() - t


def drop_sqlite_stats() -> None:
    from django.db import connection

    with connection.cursor() as c:
        for table in ("sqlite_stat1", "sqlite_stat4"):
            c.execute(f"DROP TABLE IF EXISTS {table}")
    connection.close()


# --- Sanity check against the plain rule --------------------------------------------------


def plain_rule(facility_id: int, kind: str, query: str):
    """The patients the plain rule finds (a queryset); None for a query search() refuses."""
    from django.db.models import Q

    from benhan.lib.vntext import search_terms
    from benhan.patients.models import Patient
    from benhan.patients.search import MIN_NAME_CHARS

    base = Patient.objects.filter(facility_id=facility_id).order_by()
    if kind in IDENTIFIER_KINDS:
        compact = re.sub(r"[\s.\-]", "", query).upper()
        if kind == "card":
            return base.filter(insurance_key=compact[-10:])
        digits = compact.lstrip("+")
        if digits.startswith("84") and len(digits) == 11:
            digits = "0" + digits[2:]
        cond = Q(mrn__startswith=digits) | Q(phone__startswith=digits)
        if len(digits) == 12:
            cond |= Q(cccd=digits)
        if len(digits) == 10:
            cond |= Q(insurance_key=digits)
        return base.filter(cond)
    terms = search_terms(query)
    if sum(len(t) for t in terms) < MIN_NAME_CHARS:
        return None
    qs = base
    for term in terms:
        qs = qs.filter(name_key__contains=" " + term)
    return qs


def sanity(facility_id: int, mix, limit: int = 30) -> dict:
    """Compare search() with the plain rule on every query of the mix.

    Up to a page of matches: exactly those patients. More: a full page, every one of
    them a match. Also counts the name queries that ran more than one SQL query
    (PostgreSQL: whole words found fewer than a page, so the trigram query ran too).
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from benhan.patients.search import search

    same = second_query = 0
    differ: list[str] = []
    for kind, q in mix:
        with CaptureQueriesContext(connection) as ctx:
            found, _problem = search(facility_id, q)
        if kind not in IDENTIFIER_KINDS and len(ctx.captured_queries) > 1:
            second_query += 1
        got = {p.pk for p in found}
        qs = plain_rule(facility_id, kind, q)
        if qs is None:
            ok, expected = not got, 0
        else:
            first = set(qs.values_list("id", flat=True)[: limit + 1])
            expected = len(first)
            if expected <= limit:
                ok = got == first
            else:
                ok = len(got) == limit and qs.filter(id__in=got).count() == limit
        if ok:
            same += 1
        elif len(differ) < 10:
            differ.append(f"{kind} {q!r}: search() {len(got)}, plain rule {expected}")
    return {"agree": same, "total": len(mix), "differences": differ, "second_query": second_query}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--passes", type=int, default=3, help="measured passes (default 3)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--explain", type=int, default=4, help="plans of the slowest query of the N slowest kinds"
    )
    parser.add_argument("--no-sanity", action="store_true", help="skip the plain-rule check")
    parser.add_argument(
        "--without-stats",
        action="store_true",
        help="SQLite: also measure with the planner statistics dropped (restored afterwards)",
    )
    args = parser.parse_args()

    common.setup_django()
    from benhan.accounts.models import Facility
    from benhan.patients.models import Patient
    from benhan.patients.search import search

    db = common.label()
    target = TARGET_MS[db]
    facility = Facility.objects.get(code="79999")
    n_patients = Patient.objects.filter(facility=facility).count()
    if not n_patients:
        sys.exit("no patients: run bench/seed_bulk.py first")
    index = check_name_index(db)
    analyzed = analyze()
    common.progress(
        f"{db}: {n_patients:,} patients; name index {index}; planner statistics refreshed "
        f"with benhan.core.db.analyze() as `benhan serve` does at start ({analyzed:.2f} s)"
    )
    common.progress(f"building a mix of {args.queries} queries")
    mix = build_mix(args.queries, args.seed)
    samples, warm = run_mix(search, facility.pk, mix, args.passes, "search()")
    result = {
        "patients": n_patients,
        "queries": len(mix),
        "passes": args.passes,
        "name_index": index,
        "analyze_seconds": analyzed,
        "warmup_seconds": warm,
        "app": report(
            samples, f"search() on {db}, {n_patients:,} patients, after analyze()", target
        ),
    }
    worst = slowest(samples, 10)
    common.print_table(
        ["slowest queries", "kind", "ms", "hits"], [[repr(q), k, ms, h] for k, q, ms, h in worst]
    )
    result["slowest"] = [{"query": q, "kind": k, "ms": ms, "hits": h} for k, q, ms, h in worst]
    if args.explain:
        result["plans"] = explain(search, facility.pk, worst_per_kind(samples, args.explain))

    if not args.no_sanity:
        common.progress("sanity: every query against the plain rule (LIKE / OR over the ids)")
        check = sanity(facility.pk, mix)
        print(f"same patients as the plain rule (up to a page): {check['agree']}/{check['total']}")
        for d in check["differences"]:
            print(f"  differs: {d}")
        if db == "postgres":
            print(f"name queries that also ran the trigram query: {check['second_query']}")
        result["sanity"] = check

    if args.without_stats and db == "sqlite":
        drop_sqlite_stats()
        common.progress("planner statistics dropped (sqlite_stat1, sqlite_stat4)")
        try:
            bare, _ = run_mix(search, facility.pk, mix, args.passes, "search(), no statistics")
            result["without_stats"] = report(
                bare, f"search() on {db}, {n_patients:,} patients, WITHOUT statistics", target
            )
            bw = slowest(bare, 5)
            common.print_table(
                ["slowest without statistics", "kind", "ms", "hits"],
                [[repr(q), k, ms, h] for k, q, ms, h in bw],
            )
            result["without_stats"]["slowest"] = [
                {"query": q, "kind": k, "ms": ms, "hits": h} for k, q, ms, h in bw
            ]
            if args.explain:
                result["without_stats"]["plans"] = explain(
                    search, facility.pk, worst_per_kind(bare, 2)
                )
        finally:
            analyze()
            common.progress("planner statistics restored with analyze()")
    common.save_result(f"search-{db}", result)


if __name__ == "__main__":
    main()
