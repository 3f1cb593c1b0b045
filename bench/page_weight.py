"""Page weight: requests and compressed bytes per page, as a browser loads them.

    .venv/bin/python bench/page_weight.py            # small demo database in /tmp/bench-pages
    .venv/bin/python bench/page_weight.py --reset    # re-create that database first

Starts the real server (`benhan serve --port 8799`) on a small database made by
`benhan migrate` + `benhan demo` (seed_bulk.py --patients 500 if the demo command
is missing), then drives Debian's Chromium through Playwright (never a downloaded
browser), headless, on loopback only:

    login page -> sign in (home, the worklist) -> patient search -> patient page
    -> encounter page

Two runs:

* journey: one fresh browser context (empty cache) walks the pages in order, so
  static files fetched by one page are cached for the next, as for a real user.
* cold: each page loaded in its own new context (empty cache, same session
  cookie): the worst case for each page on its own. The targets apply to this.

Per page: the number of network requests and the bytes transferred (Playwright's
request.sizes(): encoded response body + response headers), plus the decoded
size. Requests answered from the browser's memory cache are counted apart
("cached"): they transfer nothing. Pages are gzip-compressed by Django's
GZipMiddleware, static files served pre-compressed by whitenoise.

Also the htmx search fragment: GET /patients/?q=... with HX-Request: true and
Accept-Encoding: gzip, for a full page of 30 results and for a typical full name.

Targets: <= 60 KB compressed and <= 6 requests per page; fragment <= 5 KB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

PAGE_KB, PAGE_REQUESTS, FRAGMENT_KB = 60, 6, 5
DATA_DIR = str(common.TMP / "bench-pages")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

PICK = """
import json
from benhan.accounts.models import User
from benhan.encounters.models import Encounter
from benhan.patients.models import Patient
from django.db.models import Count
user = User.objects.get(username=USERNAME)
depts = list(user.departments.values_list("id", flat=True))
# A patient of the doctor's department with several encounters: a full patient page.
mine = Encounter.objects.filter(department_id__in=depts).values("patient_id")
p = (Patient.objects.filter(facility_id=user.facility_id, id__in=mine)
     .annotate(n=Count("encounters")).order_by("-n", "id").first())
e = Encounter.objects.filter(patient=p, department_id__in=depts).order_by("-started_at").first()
# An open encounter in the department, for the pages that order tests.
o = Encounter.objects.filter(department_id__in=depts, status="open").order_by("-started_at").first()
print("PICK" + json.dumps({"patient": p.pk, "encounter": e.pk, "name": p.full_name,
      "family": p.full_name.split()[0], "encounters": p.n, "open": o.pk if o else e.pk}))
"""


def run(argv: list[str], env: dict[str, str]) -> str:
    r = subprocess.run(  # noqa: S603 - our own commands
        argv, env=env, capture_output=True, text=True, cwd=common.ROOT, check=False
    )
    if r.returncode:
        sys.exit(f"{' '.join(argv)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def prepare(env: dict[str, str], reset: bool) -> dict:
    data = Path(env["BENHAN_DATA_DIR"])
    if reset and data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True, exist_ok=True)
    common.progress(f"small database in {data}: benhan migrate")
    run([common.BENHAN, "migrate", "--verbosity", "0"], env)
    has_demo = (common.ROOT / "benhan/core/management/commands/demo.py").exists()
    if has_demo:
        common.progress("benhan demo")
        run([common.BENHAN, "demo"], env)
        username, password = "bs.noi", _demo_password(env)
        source = "benhan demo"
    else:
        common.progress("no demo command: seed_bulk.py --patients 500")
        run([sys.executable, str(common.BENCH_DIR / "seed_bulk.py"), "--patients", "500",
             "--encounter-share", "0.5", "--append"], env)  # fmt: skip
        username, password, source = common.DOCTOR_USER, common.PASSWORD, "seed_bulk.py"
    out = run([common.BENHAN, "shell", "-c", f"USERNAME={username!r}\n" + PICK], env)
    line = next(x for x in out.splitlines() if x.startswith("PICK"))
    picked = json.loads(line[4:])
    picked.update(username=username, password=password, source=source)
    return picked


def _demo_password(env: dict[str, str]) -> str:
    out = run([common.BENHAN, "shell", "-c", "from benhan.core import demo; print(demo.PASSWORD)"],
              env)  # fmt: skip
    return out.strip().splitlines()[-1]


# --- Browser ----------------------------------------------------------------------------


def collect(page, action) -> list[dict]:
    """Run action (a navigation) and return every request it caused, with sizes."""
    requests = []

    def record(request) -> None:
        requests.append(request)

    page.on("requestfinished", record)
    try:
        action()
        page.wait_for_load_state("networkidle")
    finally:
        page.remove_listener("requestfinished", record)
    rows = []
    for req in requests:
        sizes = req.sizes()
        resp = req.response()
        headers = resp.all_headers() if resp else {}
        try:
            decoded = len(resp.body()) if resp and resp.status < 300 else 0
        except Exception:  # bodies of redirects are not kept
            decoded = 0
        body = max(0, sizes["responseBodySize"])
        head = max(0, sizes["responseHeadersSize"])
        rows.append(
            {
                "url": urllib.parse.urlsplit(req.url).path
                + ("?" + urllib.parse.urlsplit(req.url).query if "?" in req.url else ""),
                "method": req.method,
                "type": req.resource_type,
                "status": resp.status if resp else None,
                "encoding": headers.get("content-encoding", ""),
                "body_bytes": body,
                "header_bytes": head,
                "decoded_bytes": decoded,
                # A memory-cache hit reports status 200, the stored headers' size, the
                # decoded body, and no body bytes received.
                "network": not (body == 0 and decoded > 0 and (resp and resp.status == 200)),
            }
        )
    return rows


def pages(base: str, picked: dict) -> list[tuple[str, str]]:
    q = urllib.parse.quote(picked["name"])
    return [
        ("home (worklist)", "/"),
        ("patient search", f"/patients/?q={q}"),
        ("patient page", f"/patients/{picked['patient']}/"),
        ("encounter page", f"/encounters/{picked['encounter']}/"),
        ("encounter's tests", f"/lab/encounter/{picked['open']}/"),
        ("order tests", f"/lab/encounter/{picked['open']}/order/"),
        ("results inbox", "/lab/inbox/"),
    ]


def browse(port: int, picked: dict) -> dict:
    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{port}"
    out: dict = {"journey": [], "cold": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            # Journey: one context, cache warming up as the user goes.
            ctx = browser.new_context(base_url=base, locale="vi-VN")
            page = ctx.new_page()
            login = collect(page, lambda: page.goto("/accounts/login/"))
            out["journey"].append(("login page", login))

            def sign_in():
                page.fill("input[name=username]", picked["username"])
                page.fill("input[name=password]", picked["password"])
                page.click("form button.primary")
                page.wait_for_url(base + "/")

            out["journey"].append(("sign in -> home", collect(page, sign_in)))
            for label, path in pages(base, picked)[1:]:
                out["journey"].append((label, collect(page, lambda p=path: page.goto(p))))
            state = ctx.storage_state()
            ctx.close()
            # Cold: every page in a new context with an empty cache.
            ctx = browser.new_context(base_url=base, locale="vi-VN")
            page = ctx.new_page()
            out["cold"].append(("login page", collect(page, lambda: page.goto("/accounts/login/"))))
            ctx.close()
            for label, path in pages(base, picked):
                ctx = browser.new_context(base_url=base, locale="vi-VN", storage_state=state)
                page = ctx.new_page()
                rows = collect(page, lambda p=path, pg=page: pg.goto(p))
                if page.url.rstrip("/").endswith("/accounts/login"):
                    sys.exit(f"{path}: redirected to the login page")
                out["cold"].append((label, rows))
                ctx.close()
        finally:
            browser.close()
    return out


def fragment(port: int, picked: dict) -> list[dict]:
    b = common.Browserish(port)
    b.login(picked["username"], picked["password"])
    out = []
    for label, q in (
        ("30 results (family name)", picked["family"]),
        ("typical full name", picked["name"]),
    ):
        path = "/patients/?q=" + urllib.parse.quote(q)
        r, data = b.request("GET", path, headers={"HX-Request": "true"})
        raw = data
        if r.getheader("Content-Encoding") == "gzip":
            import gzip

            raw = gzip.decompress(data)
        rows = raw.count(b"<tr>") - 1 if b"<tr>" in raw else 0
        headers = sum(len(k) + len(v) + 4 for k, v in r.getheaders()) + 17
        out.append(
            {
                "label": label,
                "query": q,
                "status": r.status,
                "encoding": r.getheader("Content-Encoding") or "",
                "body_bytes": len(data),
                "header_bytes": headers,
                "decoded_bytes": len(raw),
                "rows": rows,
            }
        )
    return out


def summarize(run: list[tuple[str, list[dict]]]) -> list[dict]:
    out = []
    for label, rows in run:
        net = [r for r in rows if r["network"]]
        out.append(
            {
                "page": label,
                "requests": len(net),
                "from_cache": len(rows) - len(net),
                "transferred_bytes": sum(r["body_bytes"] + r["header_bytes"] for r in net),
                "body_bytes": sum(r["body_bytes"] for r in net),
                "decoded_bytes": sum(r["decoded_bytes"] for r in rows),
                "detail": rows,
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--reset", action="store_true", help="re-create the small database")
    args = parser.parse_args()

    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: apt-get install -y chromium (never a downloaded browser)")
    env = dict(os.environ)
    env.update(BENHAN_DB="sqlite", BENHAN_DATA_DIR=os.environ.get("BENCH_PAGES_DIR", DATA_DIR),
               BENHAN_LOG_LEVEL="WARNING", DJANGO_SETTINGS_MODULE="benhan.settings")  # fmt: skip
    env.pop("BENHAN_DB_NAME", None)
    picked = prepare(env, args.reset)
    common.progress(
        f"as {picked['username']}: patient {picked['patient']} ({picked['encounters']} "
        f"encounters), encounter {picked['encounter']}"
    )
    with common.Server(args.port, env):
        common.progress(f"benhan serve on 127.0.0.1:{args.port}; Chromium")
        runs = browse(args.port, picked)
        frags = fragment(args.port, picked)

    result: dict = {"database": picked, "targets": {"page_kb": PAGE_KB,
                    "page_requests": PAGE_REQUESTS, "fragment_kb": FRAGMENT_KB}}  # fmt: skip
    met = True
    for name in ("journey", "cold"):
        summary = summarize(runs[name])
        result[name] = summary
        rows = []
        for s in summary:
            ok = s["transferred_bytes"] <= PAGE_KB * 1024 and s["requests"] <= PAGE_REQUESTS
            if name == "cold":
                met &= ok
            rows.append([s["page"], s["requests"], s["from_cache"],
                         round(s["transferred_bytes"] / 1024, 1),
                         round(s["decoded_bytes"] / 1024, 1), "yes" if ok else "NO"])  # fmt: skip
        common.print_table(
            ["page", "requests", "cached", "KB transferred", "KB decoded", "in budget"],
            rows,
            title=f"{name}: "
            + (
                "one fresh context, pages in order"
                if name == "journey"
                else "each page in a new context, empty cache"
            ),
        )
        if name == "cold":
            detail = [[f"{s['page']}: {r['method']} {r['url'][:60]}", r["type"], r["status"],
                       r["encoding"] or "-", r["body_bytes"] + r["header_bytes"],
                       r["decoded_bytes"]]
                      for s in summary for r in s["detail"] if r["network"]]  # fmt: skip
            common.print_table(
                ["cold request", "type", "status", "enc", "bytes", "decoded"], detail
            )
    frows = []
    for f in frags:
        ok = f["body_bytes"] + f["header_bytes"] <= FRAGMENT_KB * 1024
        met &= ok
        frows.append([f["label"], f["rows"], f["encoding"] or "-", f["body_bytes"],
                      f["header_bytes"], f["decoded_bytes"], "yes" if ok else "NO"])  # fmt: skip
    common.print_table(
        ["htmx fragment", "rows", "enc", "body B", "headers B", "decoded B", "in budget"],
        frows,
        title="GET /patients/?q=... with HX-Request: true, Accept-Encoding: gzip",
    )
    result["fragment"] = frags
    result["met"] = met
    print(
        f"\ntargets (cold pages <= {PAGE_KB} KB and <= {PAGE_REQUESTS} requests; fragment "
        f"<= {FRAGMENT_KB} KB): {'MET' if met else 'MISSED'}"
    )
    common.save_result("page_weight", result)


if __name__ == "__main__":
    main()
