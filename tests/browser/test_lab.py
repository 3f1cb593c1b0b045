"""The laboratory's three steps in a real browser, as new staff meet them.

A doctor of Khoa Nội orders glucose (found by typing "gluc", no diacritics) and the
electrolyte panel (ticked in the plain list) from the patient's encounter. Step 1: the
lab technician presses Collect on the worklist and prints the labels: the PDF label's
Code128 decodes to the accession number, the ZPL label carries it too. Step 2: a real
HL7 listener on 127.0.0.1 (port 0) receives the analyzer's results through python-hl7's
MLLP client and answers AA. Step 3: the technician reviews the specimen (the high and
the critical value highlighted) and signs with the PIN; the sealed report verifies. The
ward sees it: the doctor's badge turns to a red 1, the inbox lists it, opening it reads
it (the badge goes back to 0).

Without JavaScript: ordering from the plain checkbox list, and collection (by the ward's
nurse), still work.

Screenshots of the specimen page and the worklist for review: run with
BENHAN_BROWSER_SHOTS=1; they go to $TMPDIR/benhan-browser/ (as failures' do).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hl7.client import MLLPClient
from playwright.sync_api import expect

from benhan.audit.chain import Actor
from benhan.lab import actions, hl7v2
from benhan.lab.ingest import Ingestor
from benhan.lab.listeners import Listener
from benhan.lab.models import (
    Analyzer,
    AnalyzerMessage,
    LabOrder,
    OrderStatus,
    ResultNotice,
    Specimen,
    SpecimenStatus,
)
from benhan.signing.verify import verify_pdf

from .conftest import ARTIFACTS, _finish, _new_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PIN = "246810"
NOTE = "Theo dõi đái tháo đường"
# What the chemistry analyzer sends for the serum tube, in its own codes (code, name,
# value, unit, range, flags): glucose high, potassium above its critical limit (6.2).
ROWS = [("glu", "Glucose", "12.4", "mmol/L", "3.9-6.4", "H"),
        ("na", "Natri", "139", "mmol/L", "135-145", "N"),
        ("k", "Kali", "6.9", "mmol/L", "3.5-5.0", "HH"),
        ("cl", "Clo", "101", "mmol/L", "98-106", "N")]  # fmt: skip
SHOTS = bool(os.environ.get("BENHAN_BROWSER_SHOTS"))


@pytest.fixture(autouse=True)
def _lab_settings(settings, tmp_path):
    settings.SIGNING_PIN_KDF_COST = 10
    settings.TSA_URL = ""
    settings.DOCUMENTS_DIR = tmp_path / "documents"


@pytest.fixture
def doctor_page(browser, live_server, request):
    """The doctor's own browser (another context): it stays open on the ward while the
    laboratory works in `page`."""
    context, page = _new_page(browser, live_server)
    yield page
    _finish(context, page, request)


# --- Helpers ------------------------------------------------------------------------------


@contextlib.contextmanager
def listening(analyzer: Analyzer):
    """A real listener for `analyzer` on 127.0.0.1, any free port; stopped and joined
    on the way out, whatever happened."""
    stop = threading.Event()
    analyzer.host, analyzer.port = "127.0.0.1", 0
    listener = Listener(analyzer, stop)
    listener.bind()
    listener.start()
    try:
        assert listener.ready.wait(5) and listener.error is None, listener.error
        yield listener.address
    finally:
        stop.set()
        listener.join(timeout=5)
        assert not listener.is_alive(), "the listener thread did not stop"


def _ack_code(ack) -> str:
    text = ack.decode() if isinstance(ack, bytes) else str(ack)
    msa = next(s for s in text.replace("\n", "\r").split("\r") if "MSA|" in s)
    return msa[msa.index("MSA|") :].split("|")[1]


def _off_the_loop(fn, *args, **kwargs):
    """fn(*args) in another thread: Playwright's sync API runs its asyncio loop on this
    one, and pyHanko's validation (inside verify_pdf) calls asyncio.run()."""
    from django.db import connection

    def run():
        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()  # the thread's own connection

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def _barcodes(pdf: bytes) -> tuple[list, tuple[float, float]]:
    """The barcodes zxing-cpp reads on the first page rendered at 8× (576 dpi), and the
    page size in millimetres."""
    import pypdfium2 as pdfium
    import zxingcpp

    doc = pdfium.PdfDocument(pdf)
    try:
        first = doc[0]
        width, height = first.get_size()
        image = first.render(scale=8).to_pil()
        return zxingcpp.read_barcodes(image), (width * 25.4 / 72, height * 25.4 / 72)
    finally:
        doc.close()


def _section(page, tr, msgid):
    """The worklist's <section> whose heading starts with msgid (a count follows)."""
    heading = page.get_by_role("heading", level=2, name=re.compile(rf"^{re.escape(tr(msgid))}"))
    return page.locator("section").filter(has=heading)


def _result_row(page, code):
    """The row of the results table whose test code is exactly `code`."""
    cell = page.locator("b.mono").filter(has_text=re.compile(rf"^{re.escape(code)}$"))
    return page.locator("table.results tbody tr").filter(has=cell)


def _flash(page):
    return page.locator("ul.messages[role=status]")


def _sign_out(page, tr):
    page.get_by_role("button", name=tr("Sign out"), exact=True).click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))


def _shot(page, name):
    if SHOTS:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"lab-{name}.png"), full_page=True)


def _open_lab_page_of_encounter(page, patient, tr):
    """From the doctor's worklist to the encounter's "Tests and imaging" page, by links.

    (The encounter page itself has no link to it: the way is through "Medical record".)
    """
    page.get_by_role("link", name=patient.full_name, exact=True).first.click()
    expect(page).to_have_url(re.compile(r"/encounters/\d+/$"))
    # (In <main>: the top bar's "Records" reads the same in Vietnamese, "Hồ sơ bệnh án".)
    main = page.locator("main")
    main.get_by_role("link", name=tr("Medical record"), exact=True).click()
    main.get_by_role("link", name=tr("Tests and imaging"), exact=True).click()
    expect(page).to_have_url(re.compile(r"/lab/encounter/\d+/$"))


def _plain_checkbox(page, code):
    """The box of `code` in the catalogue list (the search ticks it too)."""
    return page.locator("fieldset.lab-cat").get_by_role(
        "checkbox", name=re.compile(rf"^{re.escape(code)}\b")
    )


# --- The three steps -------------------------------------------------------------------------


def test_order_collect_analyzer_sign_and_the_ward_sees_it(
    page,
    doctor_page,
    catalogue,
    hl7_analyzer,
    lab_pki,
    patient,
    encounter,
    doctor,
    lab_tech,
    khoa_noi,
    password,
    sign_in,
    tr,
    label,
):
    # --- The doctor orders ------------------------------------------------------------------
    d = doctor_page
    sign_in(d, doctor, password)
    _open_lab_page_of_encounter(d, patient, tr)
    expect(d.locator("main")).to_contain_text(tr("No tests ordered on this encounter."))
    d.get_by_role("link", name=tr("Order tests"), exact=True).click()
    expect(d).to_have_url(re.compile(rf"/lab/encounter/{encounter.pk}/order/$"))

    # Search as you type, without diacritics: "gluc" finds "Glucose máu" (and the urine
    # glucose, which is not the one wanted).
    glu = catalogue["GLU"]
    d.get_by_label(label("Find a test")).press_sequentially("gluc", delay=30)
    hit = d.locator("#test-hits").get_by_role("button", name=f"{glu.code} {glu.name}", exact=True)
    expect(hit).to_be_visible()
    expect(d.locator("#test-hits")).to_contain_text(catalogue["UGLU"].name)
    hit.click()
    hit.click()  # twice: the same box stays ticked, nothing is added
    expect(_plain_checkbox(d, "GLU")).to_be_checked()
    expect(d.locator('input[name="tests"]:checked')).to_have_count(1)
    # The electrolyte panel, ticked in the plain list.
    _plain_checkbox(d, "ELEC").check()
    d.get_by_label(label("Clinical note for the laboratory")).fill(NOTE)
    _shot(d, "order")
    d.get_by_role("button", name=tr("Place the order"), exact=True).click()

    expect(d).to_have_url(re.compile(rf"/lab/encounter/{encounter.pk}/$"))
    order = LabOrder.objects.get()
    assert sorted(i.test.code for i in order.items.all()) == ["CL", "GLU", "K", "NA"]
    assert order.ordered_by == doctor and order.department == khoa_noi and order.note == NOTE
    placed = tr("Order %(number)s placed: %(n)s test(s).", number=order.number, n=4)
    expect(_flash(d)).to_contain_text(placed)
    section = d.locator("main section.panel").filter(has_text=order.number)
    expect(section.locator(".tag").first).to_have_text(tr(OrderStatus.ORDERED.label))
    expect(section).to_contain_text("GLU")
    expect(section).to_contain_text("ELEC")
    expect(section).to_contain_text(NOTE)

    # The ward's page, left open; its clock is Playwright's so that the badge's 10 s
    # poll can be run at once below instead of waited for.
    d.clock.install()
    d.goto("/")
    badge = d.locator("#lab-badge")
    expect(badge).to_have_text("0")
    expect(badge).to_have_class(re.compile(r"\bzero\b"))

    # --- Step 1: the technician collects and prints the labels -----------------------------
    sign_in(page, lab_tech, password)
    page.get_by_role("link", name=tr("Laboratory"), exact=True).click()
    expect(page).to_have_url(re.compile(r"/lab/$"))
    to_collect = _section(page, tr, "To collect")
    row = to_collect.get_by_role("row").filter(has_text=order.number)
    expect(row).to_contain_text(patient.full_name)
    expect(row).to_contain_text("GLU, ELEC")
    _shot(page, "worklist-to-collect")
    row.get_by_role("button", name=tr("Collect"), exact=True).click()

    expect(page).to_have_url(re.compile(rf"/lab/orders/{order.pk}/$"))
    serum = Specimen.objects.get(order=order)
    assert serum.specimen_type == "serum" and serum.status == SpecimenStatus.COLLECTED
    accession = serum.accession
    assert re.fullmatch(r"\d{11}", accession), accession
    collected = tr("Collected. Accession numbers: %(list)s. Print the labels.", list=accession)
    expect(_flash(page)).to_contain_text(collected)
    expect(page.get_by_role("link", name=accession, exact=True)).to_be_visible()

    pdf_link = page.get_by_role("link", name=tr("Print the labels (PDF)"), exact=True)
    response = page.request.get(pdf_link.get_attribute("href"))
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    found, (width_mm, height_mm) = _barcodes(response.body())
    assert (round(width_mm), round(height_mm)) == (50, 25)
    import zxingcpp

    assert [(b.format, b.text) for b in found] == [(zxingcpp.BarcodeFormat.Code128, accession)]

    # The thermal printer's file is a download, as a person gets it.
    zpl_link = page.get_by_role("link", name=tr("Labels for a thermal printer (ZPL)"), exact=True)
    with page.expect_download() as info:
        zpl_link.click()
    zpl = Path(info.value.path()).read_text(encoding="ascii")
    assert zpl.startswith("^XA") and "^XZ" in zpl and "^BC" in zpl
    assert f"^FD>;{accession}^FS" in zpl  # the Code128 field
    assert "NGUYEN VAN AN" in zpl  # without diacritics

    # --- Step 2: the analyzer sends the results ---------------------------------------------
    with listening(hl7_analyzer) as (host, port), MLLPClient(host, port) as client:
        client.socket.settimeout(10)  # a missing ACK fails the test, never hangs it
        oru = hl7v2.build_oru(accession, ROWS, style="mindray").decode()
        ack = client.send_message(oru)
    assert _ack_code(ack) == "AA", ack
    message = AnalyzerMessage.objects.get()
    assert (message.outcome, message.results) == ("accepted", 4)
    serum.refresh_from_db()
    assert serum.status == SpecimenStatus.COMPLETE

    # --- Step 3: the technician reviews and signs -------------------------------------------
    page.get_by_role("link", name=tr("Laboratory"), exact=True).click()
    expect(_section(page, tr, "To collect")).to_contain_text(tr("Nothing to collect."))
    to_sign = _section(page, tr, "To review and sign")
    row = to_sign.get_by_role("row").filter(has_text=accession)
    expect(row).to_have_class(re.compile(r"\bcrit\b"))
    expect(row.locator(".tag.bad")).to_have_text(tr("critical"))
    expect(row).to_contain_text(patient.full_name)
    expect(row).to_contain_text(khoa_noi.name)
    _shot(page, "worklist-to-sign")
    row.get_by_role("link", name=accession, exact=True).click()

    expect(page).to_have_url(re.compile(rf"/lab/specimens/{serum.pk}/$"))
    expect(page.locator("h2 .tag").first).to_have_text(tr(SpecimenStatus.COMPLETE.label))
    high, critical = _result_row(page, "GLU"), _result_row(page, "K")
    expect(high).to_have_class("hi")
    expect(high.locator(".val")).to_have_text(re.compile(r"^\s*12\.4\s+H\s*$"))
    expect(critical).to_have_class("crit")
    expect(critical.locator(".val")).to_have_text(
        re.compile(rf"^\s*6\.9\s+{re.escape(tr('critical'))}\s*$")
    )
    for code in ("NA", "CL"):
        expect(_result_row(page, code)).to_have_class("")
    # The stylesheet really highlights them: the critical row is tinted, the values
    # coloured, the normal ones are not.
    assert critical.evaluate("tr => getComputedStyle(tr).backgroundColor") == "rgb(253, 236, 234)"
    normal = _result_row(page, "NA").locator(".val")
    weights = {
        "hi": high.locator(".val").evaluate("td => getComputedStyle(td).fontWeight"),
        "crit": critical.locator(".val").evaluate("td => getComputedStyle(td).fontWeight"),
        "normal": normal.evaluate("td => getComputedStyle(td).fontWeight"),
    }
    assert weights == {"hi": "700", "crit": "700", "normal": "400"}, weights
    expect(_result_row(page, "K")).to_contain_text(hl7_analyzer.name)
    _shot(page, "specimen-to-sign")

    page.get_by_label(label("Signing PIN")).fill(PIN)
    page.get_by_role("button", name=tr("Sign the results"), exact=True).click()
    expect(page).to_have_url(re.compile(rf"/lab/specimens/{serum.pk}/$"))
    signed = tr("Signed and sealed. The results are in %(dept)s's inbox.", dept=khoa_noi.name)
    expect(_flash(page)).to_contain_text(signed)
    expect(page.locator("h2 .tag").first).to_have_text(tr(SpecimenStatus.SIGNED.label))
    done = page.locator("main p.panel").filter(has_text=tr("Signed and sealed."))
    report_link = done.get_by_role("link", name=tr("The report (PDF)"), exact=True)
    expect(report_link).to_be_visible()
    _shot(page, "specimen-signed")
    serum.refresh_from_db()
    assert serum.status == SpecimenStatus.SIGNED

    report_href = report_link.get_attribute("href")
    assert re.fullmatch(r"/records/documents/\d+/v\d+\.pdf", report_href), report_href
    # (Fetching it with the technician's own session is refused today: see
    # test_the_technician_opens_the_report_she_signed below. The doctor fetches it.)

    page.get_by_role("link", name=tr("Laboratory"), exact=True).click()
    expect(_section(page, tr, "To review and sign")).to_contain_text(tr("None."))
    expect(_section(page, tr, "Signed today")).to_contain_text(accession)
    _shot(page, "worklist-signed")
    assert page.watch.problems() == []
    assert page.watch.csp_violations() == []

    # --- The ward sees it ----------------------------------------------------------------
    # The doctor's page, untouched since before the collection: its htmx poll (every 10 s)
    # brings the badge up to date. Playwright's clock runs those 10 s at once; the request
    # it fires and the swap are real.
    assert ResultNotice.objects.filter(critical=True).count() == 2  # the ward's and hers
    d.clock.run_for(10_500)
    expect(badge).to_have_text("1")
    expect(badge).to_have_class(re.compile(r"\bcrit\b"))
    expect(badge).to_have_attribute("title", tr("Critical value"))
    assert badge.evaluate("b => getComputedStyle(b).color") == "rgb(255, 255, 255)"

    d.get_by_role("link", name=re.compile(rf"^{re.escape(tr('New results'))}")).click()
    expect(d).to_have_url(re.compile(r"/lab/inbox/$"))
    row = d.locator("main tbody tr").filter(has_text=accession)
    expect(row).to_have_count(1)  # her personal notice and the ward's, on one line
    expect(row).to_have_class(re.compile(r"\bunread\b.*\bcrit\b"))
    expect(row).to_contain_text(tr("critical value"))
    expect(row).to_contain_text(tr("for you"))
    expect(row).to_contain_text(tr("Not read yet"))
    _shot(d, "inbox")
    row.get_by_role("link", name=patient.full_name, exact=True).click()

    expect(d).to_have_url(re.compile(rf"/lab/specimens/{serum.pk}/$"))
    expect(_result_row(d, "K")).to_have_class("crit")
    expect(_result_row(d, "GLU")).to_have_class("hi")
    expect(_result_row(d, "K").locator(".val")).to_contain_text("6.9")
    unsigned = tr("Not signed yet: these results may still change.")
    expect(d.locator("main")).not_to_contain_text(unsigned)
    expect(badge).to_have_text("0")
    expect(badge).to_have_class(re.compile(r"\bzero\b"))
    assert not ResultNotice.objects.filter(read_at__isnull=True).exists()

    # The sealed report, fetched through the page's link with the doctor's session.
    report_link = d.get_by_role("link", name=tr("The report (PDF)"), exact=True)
    expect(report_link).to_have_attribute("href", report_href)
    response = d.request.get(report_href)
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    report = _off_the_loop(verify_pdf, response.body())
    assert report.ok, report
    assert report.sealed and not report.changed_after_seal, report
    assert report.signatures and all(s.intact and s.trusted for s in report.signatures), report

    # And in the encounter's tests, with the report.
    d.goto(f"/lab/encounter/{encounter.pk}/")
    results = d.locator("table.results")
    expect(results.locator("tr.crit")).to_contain_text("6.9")
    expect(results.locator("tr.hi")).to_contain_text("12.4")
    assert d.watch.problems() == []
    assert d.watch.csp_violations() == []


def test_the_technician_opens_the_report_she_signed(
    page, catalogue, hl7_analyzer, lab_pki, encounter, doctor, lab_tech, password, sign_in, tr
):
    actor = Actor(lab_tech)
    order = actions.do_order(Actor(doctor), encounter, [catalogue["GLU"], catalogue["ELEC"]])
    [serum] = actions.do_collect(actor, order)
    raw = hl7v2.build_oru(serum.accession, ROWS, style="mindray")
    Ingestor(hl7_analyzer).store(raw, hl7v2.parse(raw, hl7_analyzer.dialect))
    serum.refresh_from_db()
    _off_the_loop(actions.do_sign_report, actor, serum, PIN)  # pyHanko runs asyncio.run()
    serum.refresh_from_db()
    assert serum.status == SpecimenStatus.SIGNED

    sign_in(page, lab_tech, password)
    page.goto(f"/lab/specimens/{serum.pk}/")
    link = page.get_by_role("link", name=tr("The report (PDF)"), exact=True)
    response = page.request.get(link.get_attribute("href"))
    if SHOTS and response.status != 200:
        page.goto(link.get_attribute("href"))
        _shot(page, "report-refused-to-the-technician")
    assert response.status == 200, response.status
    assert response.headers["content-type"] == "application/pdf"


# --- Without JavaScript ----------------------------------------------------------------------


def test_without_javascript_order_from_the_list_and_collect(
    page_without_js, catalogue, patient, encounter, doctor, nurse, password, sign_in, tr, label
):
    page = page_without_js
    sign_in(page, doctor, password)
    _open_lab_page_of_encounter(page, patient, tr)
    page.get_by_role("link", name=tr("Order tests"), exact=True).click()
    _plain_checkbox(page, "GLU").check()
    _plain_checkbox(page, "ELEC").check()
    page.get_by_role("button", name=tr("Place the order"), exact=True).click()

    expect(page).to_have_url(re.compile(rf"/lab/encounter/{encounter.pk}/$"))
    order = LabOrder.objects.get()
    assert sorted(i.test.code for i in order.items.all()) == ["CL", "GLU", "K", "NA"]
    placed = tr("Order %(number)s placed: %(n)s test(s).", number=order.number, n=4)
    expect(_flash(page)).to_contain_text(placed)
    _sign_out(page, tr)

    # The ward's nurse takes the sample: her worklist has only the collecting part.
    sign_in(page, nurse, password)
    page.get_by_role("link", name=tr("Laboratory"), exact=True).click()
    expect(page.get_by_role("heading", name=re.compile(re.escape(tr("To review and sign"))))
           ).to_have_count(0)  # fmt: skip
    row = _section(page, tr, "To collect").get_by_role("row").filter(has_text=order.number)
    row.get_by_role("button", name=tr("Collect"), exact=True).click()

    expect(page).to_have_url(re.compile(rf"/lab/orders/{order.pk}/$"))
    serum = Specimen.objects.get(order=order)
    assert serum.status == SpecimenStatus.COLLECTED and serum.collected_by == nurse
    collected = tr("Collected. Accession numbers: %(list)s. Print the labels.",
                   list=serum.accession)  # fmt: skip
    expect(_flash(page)).to_contain_text(collected)
    pdf_link = page.get_by_role("link", name=tr("Print the labels (PDF)"), exact=True)
    response = page.request.get(pdf_link.get_attribute("href"))
    assert response.status == 200 and response.headers["content-type"] == "application/pdf"
    zpl_link = page.get_by_role("link", name=tr("Labels for a thermal printer (ZPL)"), exact=True)
    zpl = page.request.get(zpl_link.get_attribute("href")).text()
    assert "^XA" in zpl and f"^FD>;{serum.accession}^FS" in zpl
    assert page.watch.problems() == []
