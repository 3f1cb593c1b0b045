"""The laboratory's pages through HTTP, with the personas: order → collect and print
labels → results arrive → review (repeat, correct, enter by hand) → sign → the ward's
inbox; imaging; the unmatched queue; the analyzer log. And every door that must stay
shut: wrong role, another department, another facility, no session."""

from __future__ import annotations

import io
import time

import pytest
from django.urls import reverse

from benhan.audit.chain import Actor
from benhan.audit.models import AuditEvent
from benhan.lab import actions
from benhan.lab.ingest import Ingestor
from benhan.lab.messages import Message, Observation
from benhan.lab.models import (
    AnalyzerMessage,
    LabOrder,
    Result,
    ResultNotice,
    ResultState,
    Specimen,
    SpecimenStatus,
)
from benhan.records.models import DocumentStatus

from .conftest import PIN

HTMX = "vendor/htmx-2.0.11.min.js"
PAGE_BUDGET = 40_000  # HTML bytes, before gzip; the 60 KB budget includes CSS and htmx


def chem(sid: str, values: dict[str, str], ctl: str = "1", **kw) -> Message:
    return Message(protocol="hl7", message_type="ORU^R01", control_id=ctl,
                   observations=[Observation(specimen_id=sid, test_code=c.lower(), value=v, **kw)
                                 for c, v in values.items()])  # fmt: skip


def arrive(analyzer, specimen, values: dict[str, str], raw: bytes | None = None, ctl="1"):
    raw = raw or f"MSH|{specimen.accession}|{sorted(values.items())}|{ctl}".encode()
    return Ingestor(analyzer).store(raw, chem(specimen.accession, values, ctl))


def denied(user) -> int:
    return AuditEvent.objects.filter(action="access.denied", actor=user).count()


def text(r) -> str:
    return r.content.decode()


def follow_messages(r) -> list[str]:
    return [str(m) for m in r.context["messages"]] if r.context else []


@pytest.fixture
def client_for(client_for, settings):
    """The personas' clients, in English: the assertions read the messages' msgids,
    whatever the Vietnamese translation says."""

    def make(user, **kw):
        client = client_for(user, **kw)
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
        return client

    return make


@pytest.fixture
def serum(specimens):
    return specimens["serum"]


@pytest.fixture
def complete(serum, hl7_analyzer):
    """The serum tube with all four results in: GLU high, K critical."""
    arrive(hl7_analyzer, serum, {"GLU": "12.4", "NA": "139", "K": "<2.0", "CL": "101"})
    serum.refresh_from_db()
    assert serum.status == SpecimenStatus.COMPLETE
    return serum


def jpeg() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 140, 160)).save(out, "JPEG")
    return out.getvalue()


# --- Ordering --------------------------------------------------------------------------


def test_doctor_orders_with_plain_checkboxes(client_for, doctor, encounter, catalogue):
    client = client_for(doctor)
    url = reverse("lab:new_order", args=[encounter.pk])
    r = client.get(url)
    assert r.status_code == 200
    page = text(r)
    assert len(r.content) < PAGE_BUDGET
    # The catalogue by kind, panels first.
    assert page.index("CBC") < page.index(">GLU<") < page.index("SA-BUNG") < page.index("XQ-NGUC")
    assert f'name="tests" value="{catalogue["ELEC"].pk}"' in page

    r = client.post(url, {"tests": [catalogue["GLU"].pk, catalogue["ELEC"].pk],
                          "priority": "stat", "note": "Đái tháo đường, nôn nhiều"})  # fmt: skip

    assert r.status_code == 302 and r["Location"] == reverse("lab:encounter", args=[encounter.pk])
    order = LabOrder.objects.get(encounter=encounter)
    assert order.priority == "stat" and order.ordered_by == doctor
    assert sorted(i.test.code for i in order.items.all()) == ["CL", "GLU", "K", "NA"]
    assert AuditEvent.objects.filter(action="lab.order", actor=doctor).exists()
    r = client.get(r["Location"])
    assert order.number in text(r) and "ELEC" in text(r)


def test_order_form_refuses_nothing_chosen(client_for, doctor, encounter, catalogue):
    r = client_for(doctor).post(reverse("lab:new_order", args=[encounter.pk]),
                                {"priority": "routine"})  # fmt: skip
    assert r.status_code == 422
    assert not LabOrder.objects.exists()


def test_doctor_orders_through_the_search_box(client_for, doctor, encounter, catalogue):
    client = client_for(doctor)
    search = reverse("lab:tests")
    r = client.get(search, {"q": "dien giai"}, HTTP_HX_REQUEST="true")  # no accents
    assert r.status_code == 200 and len(r.content) < 5000
    assert "ELEC" in text(r) and "GLU" not in text(r)
    r = client.get(search, {"q": "glucose mau"}, HTTP_HX_REQUEST="true")
    assert "Glucose máu" in text(r) and "Glucose niệu" not in text(r)
    glu = catalogue["GLU"]
    r = client.get(search, {"pick": glu.pk}, HTTP_HX_REQUEST="true")
    # The test's own box in the list, ticked: picking twice cannot order it twice.
    assert f'id="t-{glu.pk}"' in text(r) and f'name="tests" value="{glu.pk}" checked' in text(r)
    assert f'hx-target="#t-{glu.pk}"' in text(client.get(search, {"q": "glucose mau"}))

    r = client.post(reverse("lab:new_order", args=[encounter.pk]),
                    {"tests": [glu.pk], "priority": "routine"})  # fmt: skip

    assert r.status_code == 302
    assert [i.test.code for i in LabOrder.objects.get().items.all()] == ["GLU"]


@pytest.mark.parametrize("persona", ["receptionist", "admin", "records_officer", "lab_tech",
                                     "nurse"])  # fmt: skip
def test_only_doctors_order(persona, request, client_for, encounter, catalogue):
    user = request.getfixturevalue(persona)
    client = client_for(user)
    url = reverse("lab:new_order", args=[encounter.pk])
    before = denied(user)
    assert client.get(url).status_code == 403
    assert client.post(url, {"tests": [catalogue["GLU"].pk], "priority": "routine"}
                       ).status_code == 403  # fmt: skip
    assert client.get(reverse("lab:tests"), {"q": "glu"}).status_code == 403
    assert not LabOrder.objects.exists()
    assert denied(user) == before + 3


def test_outsider_doctor_must_break_the_glass_to_order(client_for, outsider_doctor, encounter,
                                                       catalogue, patient):  # fmt: skip
    r = client_for(outsider_doctor).get(reverse("lab:new_order", args=[encounter.pk]))
    assert r.status_code == 403
    assert reverse("patients:break_glass", args=[patient.pk]) in text(r)
    assert AuditEvent.objects.filter(action="access.denied", actor=outsider_doctor,
                                     patient=patient).exists()  # fmt: skip


# --- Collection and labels ---------------------------------------------------------------


def test_lab_tech_collects_and_prints_labels(client_for, lab_tech, order):
    client = client_for(lab_tech)
    r = client.get(reverse("lab:worklist"))
    assert r.status_code == 200 and order.number in text(r)
    assert AuditEvent.objects.filter(action="worklist.view", actor=lab_tech,
                                     detail__list="lab.collect").exists()  # fmt: skip

    r = client.post(reverse("lab:collect", args=[order.pk]))

    assert r.status_code == 302 and r["Location"] == reverse("lab:order", args=[order.pk])
    specimens = list(Specimen.objects.filter(order=order))
    assert len(specimens) == 2
    r = client.get(r["Location"])
    page = text(r)
    assert all(s.accession in page for s in specimens)
    assert reverse("lab:labels_pdf", args=[order.pk]) in page

    pdf = client.get(reverse("lab:labels_pdf", args=[order.pk]))
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    zpl = client.get(reverse("lab:labels_zpl", args=[order.pk]))
    assert zpl["Content-Type"].startswith("text/plain")
    assert zpl["Content-Disposition"].startswith("attachment")
    body = zpl.content.decode("ascii")
    assert body.count("^XA") == 2 and all(s.accession in body for s in specimens)
    one = client.get(reverse("lab:labels_zpl", args=[order.pk]), {"s": specimens[0].pk})
    assert one.content.decode().count("^XA") == 1

    # Collected once: a second press says so.
    r = client.post(reverse("lab:collect", args=[order.pk]), follow=True)
    assert Specimen.objects.filter(order=order).count() == 2
    assert any("already" in m for m in follow_messages(r))


def test_nurse_collects_on_her_ward_only(client_for, nurse, make_user, khoa_ngoai, order):
    from benhan.accounts.models import Role

    client = client_for(nurse)
    r = client.get(reverse("lab:worklist"))
    assert r.status_code == 200 and order.number in text(r)
    assert reverse("lab:unmatched") not in text(r)  # only what nurses do
    other = make_user("nurse_ngoai", Role.NURSE, [khoa_ngoai])
    assert order.number not in text(client_for(other).get(reverse("lab:worklist")))

    r = client.post(reverse("lab:collect", args=[order.pk]))

    assert r.status_code == 302 and order.specimens.count() == 2
    assert client.get(reverse("lab:labels_pdf", args=[order.pk])).content.startswith(b"%PDF")


@pytest.mark.parametrize("persona", ["doctor", "receptionist", "records_officer", "admin"])
def test_worklist_and_collection_refused_to_others(persona, request, client_for, order):
    user = request.getfixturevalue(persona)
    client = client_for(user)
    before = denied(user)
    assert client.get(reverse("lab:worklist")).status_code == 403
    assert client.post(reverse("lab:collect", args=[order.pk])).status_code == 403
    assert client.get(reverse("lab:labels_zpl", args=[order.pk])).status_code == 403
    assert not order.specimens.exists()
    assert denied(user) == before + 3


# --- Results: review -------------------------------------------------------------------------


def test_results_show_highlighted(client_for, lab_tech, complete, hl7_analyzer):
    client = client_for(lab_tech)
    r = client.get(reverse("lab:specimen", args=[complete.pk]))
    assert r.status_code == 200 and len(r.content) < PAGE_BUDGET
    page = text(r)
    assert 'class="hi"' in page and "12.4" in page
    crit = page[page.index('<tr class="crit">') :]
    assert crit.index("&lt;2.0") < crit.index("</tr>")  # exactly as sent, escaped
    assert "BS-240 (HL7)" in page and "135 - 145" in page
    assert 'class=""' in page  # NA: normal
    assert reverse("lab:sign", args=[complete.pk]) in page
    assert AuditEvent.objects.filter(action="lab.view", actor=lab_tech,
                                     object_id=str(complete.pk)).exists()  # fmt: skip
    # On the worklist: to review, marked critical.
    page = text(client.get(reverse("lab:worklist")))
    review = page[page.index("To review and sign") : page.index("Waiting for a second")]
    assert complete.accession in review and "critical" in review


def test_repeat_correct_and_enter_by_hand(client_for, lab_tech, complete, catalogue):
    client = client_for(lab_tech)
    url = reverse("lab:specimen", args=[complete.pk])
    glu = complete.results.get(test__code="GLU", state=ResultState.CURRENT)

    r = client.post(reverse("lab:repeat", args=[glu.pk]), {"reason": "Mẫu vỡ hồng cầu"})

    assert r.status_code == 302 and r["Location"] == url
    glu.refresh_from_db()
    complete.refresh_from_db()
    assert glu.state == ResultState.SUPERSEDED and complete.status == SpecimenStatus.PARTIAL
    page = text(client.get(url))
    assert "<details><summary>1" in page and "<s>12.4</s>" in page
    assert f'name="t{catalogue["GLU"].pk}"' in page  # now waiting: entered by hand

    r = client.post(reverse("lab:manual", args=[complete.pk]), {f"t{catalogue['GLU'].pk}": "6.8"})

    assert r.status_code == 302
    manual = complete.results.get(test__code="GLU", state=ResultState.CURRENT)
    assert (manual.value, manual.source, manual.entered_by) == ("6.8", "manual", lab_tech)
    complete.refresh_from_db()
    assert complete.status == SpecimenStatus.COMPLETE

    na = complete.results.get(test__code="NA", state=ResultState.CURRENT)
    r = client.post(reverse("lab:correct", args=[na.pk]), {"value": "141", "reason": ""},
                    follow=True)  # fmt: skip
    assert any("reason" in m for m in follow_messages(r))
    assert complete.results.get(test__code="NA", state=ResultState.CURRENT).pk == na.pk

    r = client.post(reverse("lab:correct", args=[na.pk]),
                    {"value": "141", "reason": "Nhập nhầm khi chuyển máy"})  # fmt: skip

    assert r.status_code == 302
    fixed = complete.results.get(test__code="NA", state=ResultState.CURRENT)
    assert (fixed.value, fixed.reason, fixed.supersedes_id) == ("141", "Nhập nhầm khi chuyển máy",
                                                                na.pk)  # fmt: skip
    assert AuditEvent.objects.filter(action="lab.result_correct", actor=lab_tech).exists()
    assert AuditEvent.objects.filter(action="lab.result_repeat", reason="Mẫu vỡ hồng cầu").exists()


@pytest.mark.parametrize("persona", ["nurse", "doctor", "records_officer"])
def test_only_the_lab_reviews_and_signs(persona, request, client_for, complete, lab_pki):
    user = request.getfixturevalue(persona)
    client = client_for(user)
    r = client.get(reverse("lab:specimen", args=[complete.pk]))
    assert r.status_code == 200  # they may read it...
    assert reverse("lab:sign", args=[complete.pk]) not in text(r)
    assert "Not signed yet" in text(r)
    na = complete.results.get(test__code="NA", state=ResultState.CURRENT)
    before = denied(user)
    posts = [
        (reverse("lab:sign", args=[complete.pk]), {"pin": PIN}),
        (reverse("lab:correct", args=[na.pk]), {"value": "150", "reason": "thử sửa kết quả"}),
        (reverse("lab:repeat", args=[na.pk]), {"reason": "thử chạy lại"}),
        (reverse("lab:manual", args=[complete.pk]), {}),
        (reverse("lab:imaging", args=[complete.pk]), {"findings": "x", "conclusion": "y"}),
    ]
    for url, data in posts:  # ...but not change it
        assert client.post(url, data).status_code == 403, url
    assert denied(user) == before + len(posts)
    complete.refresh_from_db()
    assert complete.status == SpecimenStatus.COMPLETE and complete.report is None
    assert complete.results.get(test__code="NA", state=ResultState.CURRENT).value == "139"


# --- Signing and the ward's inbox -------------------------------------------------------------


def test_sign_seal_and_the_wards_inbox(client_for, lab_tech, doctor, nurse, complete, lab_pki):
    tech = client_for(lab_tech)
    url = reverse("lab:specimen", args=[complete.pk])

    r = tech.post(reverse("lab:sign", args=[complete.pk]), {"pin": "999999"}, follow=True)

    assert any("Wrong PIN" in m for m in follow_messages(r))
    complete.refresh_from_db()
    assert complete.status == SpecimenStatus.COMPLETE
    assert not ResultNotice.objects.exists()
    # Resumable: the sign form is still there; the report is made, so the values that
    # will be signed can no longer change.
    assert reverse("lab:sign", args=[complete.pk]) in text(r)
    assert 'name="reason"' not in text(r)
    na = complete.results.get(test__code="NA", state=ResultState.CURRENT)
    r = tech.post(reverse("lab:correct", args=[na.pk]),
                  {"value": "150", "reason": "Nhập nhầm khi chuyển máy"}, follow=True)  # fmt: skip
    assert any("no longer be changed" in m for m in follow_messages(r))
    assert complete.results.get(test__code="NA", state=ResultState.CURRENT).pk == na.pk

    r = tech.post(reverse("lab:sign", args=[complete.pk]), {"pin": PIN})

    assert r.status_code == 302 and r["Location"] == url
    complete.refresh_from_db()
    assert complete.status == SpecimenStatus.SIGNED
    assert complete.report.status == DocumentStatus.SEALED
    page = text(tech.get(url))
    assert reverse("records:pdf", args=[complete.report.pk, 1]) in page
    assert reverse("lab:sign", args=[complete.pk]) not in page
    assert 'name="reason"' not in page  # no repeat or correction after signing

    # The ward: the badge, the inbox, the results.
    doc = client_for(doctor)
    badge = doc.get(reverse("lab:inbox_count"), HTTP_HX_REQUEST="true")
    assert badge.status_code == 200 and ">1</span>" in text(badge)  # one specimen...
    assert "badge crit" in text(badge)  # ...with a critical value
    assert 'hx-trigger="every 10s"' in text(badge) and 'hx-swap="outerHTML"' in text(badge)
    home = text(doc.get(reverse("core:home")))
    assert 'id="lab-badge"' in home and ">1</span>" in home
    r = doc.get(reverse("lab:inbox"))
    assert r.status_code == 200 and complete.accession in text(r)
    assert "critical value" in text(r) and "for you" in text(r)
    assert AuditEvent.objects.filter(action="worklist.view", actor=doctor,
                                     detail__list="lab.inbox").exists()  # fmt: skip
    notice = ResultNotice.objects.filter(user=doctor).get()

    r = doc.get(reverse("lab:inbox_open", args=[notice.pk]))

    assert r.status_code == 302 and r["Location"] == url
    assert not ResultNotice.objects.filter(read_at__isnull=True).exists()  # both notices
    assert ResultNotice.objects.filter(read_by=doctor).count() == 2
    assert ">0</span>" in text(doc.get(reverse("lab:inbox_count")))
    page = text(doc.get(url))
    assert "12.4" in page and reverse("records:pdf", args=[complete.report.pk, 1]) in page
    # The encounter's page and its record list the signed results and the report.
    enc = complete.order.encounter
    page = text(doc.get(reverse("lab:encounter", args=[enc.pk])))
    assert complete.accession in page and "&lt;2.0" in page
    assert reverse("records:pdf", args=[complete.report.pk, 1]) in page
    page = text(doc.get(reverse("records:encounter", args=[enc.pk])))
    assert reverse("lab:encounter", args=[enc.pk]) in page and complete.order.number in page

    # The nurse of the ward sees the department's notice, read by the doctor.
    r = client_for(nurse).get(reverse("lab:inbox"))
    assert complete.accession in text(r) and doctor.full_name in text(r)
    assert "for you" not in text(r)


def test_second_verifier(client_for, lab_tech, doctor, complete, lab_pki, catalogue):
    from benhan.signing import pki

    catalogue["GLU"].needs_verifier = True
    catalogue["GLU"].save()
    pki.issue_staff_credential(doctor, PIN)
    url = reverse("lab:specimen", args=[complete.pk])
    tech = client_for(lab_tech)
    tech.post(reverse("lab:sign", args=[complete.pk]), {"pin": PIN})
    complete.refresh_from_db()
    assert complete.status == SpecimenStatus.COMPLETE
    assert complete.report.status == DocumentStatus.COMPLETED
    page = text(tech.get(url))
    assert "waiting for a second verifier" in page
    assert reverse("lab:verify", args=[complete.pk]) not in page  # not the one who signed
    page = text(tech.get(reverse("lab:worklist")))
    verify = page[page.index("Waiting for a second") : page.index("Waiting for results")]
    assert complete.accession in verify
    # The same technician cannot be the second verifier.
    r = tech.post(reverse("lab:verify", args=[complete.pk]), {"pin": PIN}, follow=True)
    assert any("already signed" in m for m in follow_messages(r))

    doc = client_for(doctor)
    assert reverse("lab:verify", args=[complete.pk]) in text(doc.get(url))
    r = doc.post(reverse("lab:verify", args=[complete.pk]), {"pin": PIN})

    assert r.status_code == 302
    complete.refresh_from_db()
    assert complete.status == SpecimenStatus.SIGNED
    assert complete.report.status == DocumentStatus.SEALED


def test_verify_refused_when_nothing_waits(client_for, doctor, complete):
    r = client_for(doctor).post(reverse("lab:verify", args=[complete.pk]), {"pin": PIN},
                                follow=True)  # fmt: skip
    assert any("not waiting" in m for m in follow_messages(r))
    complete.refresh_from_db()
    assert complete.report is None  # the doctor did not start a report


# --- The top bar -------------------------------------------------------------------------------


def test_top_bar_links_and_htmx_loaded_once(client_for, doctor, nurse, lab_tech, receptionist,
                                            patient):  # fmt: skip
    for user in (doctor, nurse):
        client = client_for(user)
        home = text(client.get(reverse("core:home")))
        assert home.count(HTMX) == 1 and 'id="lab-badge"' in home
        assert reverse("lab:inbox") in home
        # The search page includes htmx itself: still loaded once.
        search = text(client.get(reverse("patients:search"), {"q": "nguyen"}))
        assert search.count(HTMX) == 1 and 'id="lab-badge"' in search
    worklist = f'href="{reverse("lab:worklist")}"'
    assert worklist in text(client_for(nurse).get(reverse("core:home")))
    assert worklist not in text(client_for(doctor).get(reverse("core:home")))
    home = text(client_for(lab_tech).get(reverse("core:home")))
    assert worklist in home and "lab-badge" not in home and HTMX not in home
    home = text(client_for(receptionist).get(reverse("core:home")))
    assert "lab-badge" not in home and worklist not in home
    search = text(client_for(receptionist).get(reverse("patients:search"), {"q": "nguyen"}))
    assert search.count(HTMX) == 1  # the page's own copy is not cut for others


def test_badge_costs_one_query_and_only_when_shown(client_for, doctor, patient,
                                                   django_assert_num_queries):  # fmt: skip
    from django.test import RequestFactory

    from benhan.lab.context import lab

    request = RequestFactory().get("/")
    request.user = doctor
    doctor.department_ids()  # cached per request, as a page has it already
    ctx = lab(request)
    with django_assert_num_queries(0):
        lab(request)
    with django_assert_num_queries(1):
        assert (ctx["lab_inbox"].n, ctx["lab_inbox"].critical) == (0, False)


def test_the_badge_poll_is_not_activity(client_for, doctor):
    client = client_for(doctor)
    session = client.session
    session["last_seen"] = int(time.time()) - 600
    session.save()
    r = client.get(reverse("lab:inbox_count"), HTTP_HX_REQUEST="true")
    assert r.status_code == 200
    assert abs(client.session["last_seen"] - (int(time.time()) - 600)) <= 1
    # 31 minutes idle: the poll signs the screen out instead of keeping it open.
    session = client.session
    session["last_seen"] = int(time.time()) - 31 * 60
    session.save()
    r = client.get(reverse("lab:inbox_count"), HTTP_HX_REQUEST="true")
    assert r.status_code == 401 and "HX-Redirect" in r


@pytest.mark.parametrize("persona", ["lab_tech", "receptionist", "records_officer", "admin"])
def test_inbox_is_for_the_wards(persona, request, client_for, complete):
    user = request.getfixturevalue(persona)
    client = client_for(user)
    assert client.get(reverse("lab:inbox")).status_code == 403
    assert client.get(reverse("lab:inbox_count")).status_code == 403


def test_a_notice_of_another_ward_cannot_be_opened(client_for, outsider_doctor, complete,
                                                   lab_tech, lab_pki):  # fmt: skip
    actions.do_sign_report(Actor(lab_tech), complete, PIN)
    notice = ResultNotice.objects.filter(user__isnull=True).get()
    client = client_for(outsider_doctor)
    assert complete.accession not in text(client.get(reverse("lab:inbox")))
    assert client.get(reverse("lab:inbox_open", args=[notice.pk])).status_code == 404
    assert ">0</span>" in text(client.get(reverse("lab:inbox_count")))
    notice.refresh_from_db()
    assert notice.read_at is None


# --- Imaging -------------------------------------------------------------------------------


def test_ultrasound_report_with_images(client_for, doctor, lab_tech, encounter, catalogue,
                                       lab_pki):  # fmt: skip
    doc = client_for(doctor)
    doc.post(reverse("lab:new_order", args=[encounter.pk]),
             {"tests": [catalogue["SA-BUNG"].pk], "priority": "routine",
              "note": "Đau hạ sườn phải"})  # fmt: skip
    order = LabOrder.objects.get()
    tech = client_for(lab_tech)
    tech.post(reverse("lab:collect", args=[order.pk]))
    specimen = order.specimens.get()
    url = reverse("lab:specimen", args=[specimen.pk])
    page = text(tech.get(url))
    assert 'name="findings"' in page and 'name="images"' in page
    assert "Write the findings" in page  # not signable yet

    bad = io.BytesIO(b"%PDF-1.4 not an image")
    bad.name = "scan.pdf"
    r = tech.post(reverse("lab:imaging", args=[specimen.pk]),
                  {"findings": "Gan to", "conclusion": "Gan nhiễm mỡ",
                   "images": [bad]})  # fmt: skip
    assert r.status_code == 422 and "scan.pdf" in text(r) and "Gan to" in text(r)

    image = io.BytesIO(jpeg())
    image.name = "gan.jpg"
    r = tech.post(reverse("lab:imaging", args=[specimen.pk]), {
        "findings": "Gan không to, nhu mô tăng âm lan toả. Túi mật không sỏi.",
        "conclusion": "Gan nhiễm mỡ độ I", "images": [image]})  # fmt: skip

    assert r.status_code == 302
    specimen.refresh_from_db()
    assert specimen.status == SpecimenStatus.COMPLETE and len(specimen.images) == 1
    img = tech.get(reverse("lab:image", args=[specimen.pk, 0]))
    assert img["Content-Type"] == "image/jpeg" and img.content == jpeg()
    assert tech.get(reverse("lab:image", args=[specimen.pk, 1])).status_code == 404

    r = tech.post(reverse("lab:sign", args=[specimen.pk]), {"pin": PIN})

    assert r.status_code == 302
    specimen.refresh_from_db()
    assert specimen.status == SpecimenStatus.SIGNED
    assert specimen.report.form_type == "imaging_report"
    assert specimen.report.status == DocumentStatus.SEALED
    page = text(doc.get(reverse("lab:encounter", args=[encounter.pk])))
    assert "Gan nhiễm mỡ độ I" in page
    assert ">1</span>" in text(doc.get(reverse("lab:inbox_count")))


# --- The unmatched queue and the analyzer log ---------------------------------------------------


def test_unmatched_result_linked_by_accession(client_for, lab_tech, hl7_analyzer, serum):
    Ingestor(hl7_analyzer).store(b"u-1", chem("9999-00", {"GLU": "5.0"}))
    client = client_for(lab_tech)
    r = client.get(reverse("lab:unmatched"))
    assert r.status_code == 200 and "9999-00" in text(r) and "unknown specimen" in text(r)
    assert ">1</span>" in text(client.get(reverse("lab:worklist")))
    result = Result.objects.get(state=ResultState.UNMATCHED)

    r = client.post(reverse("lab:link", args=[result.pk]), {"accession": "12345"}, follow=True)
    assert any("12345" in m for m in follow_messages(r))
    r = client.post(reverse("lab:link", args=[result.pk]), {"accession": f" {serum.accession} "})

    assert r.status_code == 302
    result.refresh_from_db()
    assert result.state == ResultState.CURRENT and result.specimen == serum
    assert "9999-00" not in text(client.get(reverse("lab:unmatched")))
    assert AuditEvent.objects.filter(action="lab.result_link", actor=lab_tech).exists()


def test_analyzer_log_and_raw_message(client_for, lab_tech, hl7_analyzer, serum):
    raw = (b"\x0bMSH|^~\\&|BS-240|LAB|||20260105||ORU^R01|C-77|P|2.3.1\r"
           + f"OBR|1|{serum.accession}\r".encode()
           + "OBX|1|NM|GLU^Glucose||5.1|mmol/L|3.9-6.4|N|||F\rNTE|1||Bình thường\r".encode()
           + b"\x1c\r")  # fmt: skip
    Ingestor(hl7_analyzer).store(raw, chem(serum.accession, {"GLU": "5.1"}, ctl="C-77"))
    from benhan.lab.messages import MessageError

    Ingestor(hl7_analyzer).store(b"garbage", None, error=MessageError("no MSH segment", "AR"))
    client = client_for(lab_tech)
    r = client.get(reverse("lab:analyzers"))
    assert r.status_code == 200 and "C-77" in text(r) and "no MSH segment" in text(r)
    r = client.get(reverse("lab:analyzers"), {"outcome": "rejected"})
    assert "C-77" not in text(r) and "no MSH segment" in text(r)
    r = client.get(reverse("lab:analyzers"), {"analyzer": hl7_analyzer.pk, "outcome": "accepted"})
    assert "C-77" in text(r) and "no MSH segment" not in text(r)

    msg = AnalyzerMessage.objects.get(control_id="C-77")
    r = client.get(reverse("lab:message", args=[msg.pk]))

    page = text(r)
    assert r.status_code == 200
    for marker in ("&lt;VT&gt;", "&lt;CR&gt;", "&lt;FS&gt;"):
        assert marker in page
    assert "Bình thường" in page and serum.accession in page
    event = AuditEvent.objects.filter(action="lab.view", actor=lab_tech).latest("seq")
    assert event.object_id == str(msg.pk) and event.patient == serum.order.encounter.patient
    r = client.get(reverse("lab:message", args=[msg.pk]), {"download": "1"})
    assert r.content == raw


@pytest.mark.parametrize("persona", ["nurse", "doctor", "admin"])
def test_lab_only_pages(persona, request, client_for, hl7_analyzer, serum):
    Ingestor(hl7_analyzer).store(b"u-2", chem("0000", {"GLU": "5.0"}))
    user = request.getfixturevalue(persona)
    client = client_for(user)
    msg = AnalyzerMessage.objects.get()
    result = Result.objects.get()
    before = denied(user)
    assert client.get(reverse("lab:unmatched")).status_code == 403
    assert client.post(reverse("lab:link", args=[result.pk]),
                       {"accession": serum.accession}).status_code == 403  # fmt: skip
    assert client.get(reverse("lab:analyzers")).status_code == 403
    assert client.get(reverse("lab:message", args=[msg.pk])).status_code == 403
    assert denied(user) == before + 4
    result.refresh_from_db()
    assert result.state == ResultState.UNMATCHED


# --- Doors that stay shut ---------------------------------------------------------------------


def test_outsider_doctor_must_break_the_glass(client_for, outsider_doctor, complete, patient):
    client = client_for(outsider_doctor)
    for url in (reverse("lab:specimen", args=[complete.pk]),
                reverse("lab:order", args=[complete.order_id]),
                reverse("lab:encounter", args=[complete.order.encounter_id])):  # fmt: skip
        r = client.get(url)
        assert r.status_code == 403
        assert reverse("patients:break_glass", args=[patient.pk]) in text(r)
        assert "12.4" not in text(r)
    assert AuditEvent.objects.filter(action="access.denied", actor=outsider_doctor,
                                     patient=patient).count() == 3  # fmt: skip
    assert not AuditEvent.objects.filter(action="lab.view", actor=outsider_doctor).exists()


def test_other_facility_sees_nothing(client_for, other_facility_doctor, complete, hl7_analyzer):
    client = client_for(other_facility_doctor)
    msg = AnalyzerMessage.objects.get()
    result = complete.results.first()
    urls = [
        reverse("lab:specimen", args=[complete.pk]),
        reverse("lab:order", args=[complete.order_id]),
        reverse("lab:encounter", args=[complete.order.encounter_id]),
        reverse("lab:new_order", args=[complete.order.encounter_id]),
        reverse("lab:image", args=[complete.pk, 0]),
    ]
    for url in urls:
        assert client.get(url).status_code == 404, url
    assert client.post(reverse("lab:sign", args=[complete.pk]), {"pin": PIN}).status_code in (
        403, 404)  # fmt: skip
    # A lab technician of the other facility: 404 as well.
    from benhan.accounts.models import Role, User

    tech = User.objects.create_user("other_tech", password="x", role=Role.LAB_TECH,
                                    facility=other_facility_doctor.facility)  # fmt: skip
    other = client_for(tech)
    for url in [*urls[:2], reverse("lab:message", args=[msg.pk])]:
        assert other.get(url).status_code == 404, url
    assert other.post(reverse("lab:repeat", args=[result.pk]), {"reason": "x"}).status_code == 404
    assert other.post(reverse("lab:sign", args=[complete.pk]), {"pin": PIN}).status_code == 404
    assert other.post(reverse("lab:collect", args=[complete.order_id])).status_code == 404
    assert complete.order.encounter.patient.full_name not in text(
        other.get(reverse("lab:worklist"))
    )


def test_anonymous_goes_to_login(client, complete):
    for url in (reverse("lab:worklist"), reverse("lab:specimen", args=[complete.pk]),
                reverse("lab:inbox"), reverse("lab:inbox_count"),
                reverse("lab:labels_pdf", args=[complete.order_id])):  # fmt: skip
        r = client.get(url)
        assert r.status_code == 302 and r["Location"].startswith(reverse("accounts:login")), url
    r = client.post(reverse("lab:sign", args=[complete.pk]), {"pin": PIN})
    assert r.status_code == 302 and r["Location"].startswith(reverse("accounts:login"))


def test_admin_configures_the_catalogue_but_sees_no_patient_data(client_for, admin, complete,
                                                                 hl7_analyzer):  # fmt: skip
    client = client_for(admin)
    before = denied(admin)
    for url in (reverse("lab:specimen", args=[complete.pk]), reverse("lab:worklist"),
                reverse("lab:order", args=[complete.order_id])):  # fmt: skip
        assert client.get(url).status_code == 403
    assert denied(admin) == before + 3
    index = text(client.get(reverse("admin:app_list", args=["lab"])))
    assert "/admin/lab/labtest/" in index and "/admin/lab/analyzer/" in index
    for model in ("result", "specimen", "laborder", "orderitem", "analyzermessage",
                  "resultnotice"):  # fmt: skip
        assert f"/admin/lab/{model}/" not in index
        assert client.get(f"/admin/lab/{model}/").status_code == 404
    r = client.get(reverse("admin:lab_labtest_change", args=[complete.items.first().test_id]))
    assert r.status_code == 200 and "reference range" in text(r).lower()
    assert client.get(reverse("admin:lab_labtest_changelist"), {"q": "gluc"}).status_code == 200
    r = client.get(reverse("admin:lab_analyzer_change", args=[hl7_analyzer.pk]))
    assert r.status_code == 200 and "glu" in text(r)
    assert complete.order.encounter.patient.full_name not in text(r)


# --- Cheap pages ---------------------------------------------------------------------------


def test_worklist_queries_do_not_grow_with_the_list(client_for, lab_tech, doctor, encounter,
                                                    catalogue, hl7_analyzer,
                                                    django_assert_max_num_queries):  # fmt: skip
    client = client_for(lab_tech)

    def make(n):
        for _ in range(n):
            o = actions.do_order(Actor(doctor), encounter, [catalogue["GLU"], catalogue["CBC"]])
            s = actions.do_collect(Actor(lab_tech), o)[0]
            arrive(hl7_analyzer, s, {"GLU": "30"}, ctl=s.accession)
            actions.do_order(Actor(doctor), encounter, [catalogue["ELEC"]])

    make(1)
    client.get(reverse("lab:worklist"))
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        assert client.get(reverse("lab:worklist")).status_code == 200
    make(4)
    with django_assert_max_num_queries(len(one.captured_queries)):
        r = client.get(reverse("lab:worklist"))
    assert len(r.content) < PAGE_BUDGET


def test_pages_stay_small(client_for, doctor, complete, lab_tech):
    order = complete.order
    for client, url in [
        (client_for(doctor), reverse("lab:encounter", args=[order.encounter_id])),
        (client_for(doctor), reverse("lab:order", args=[order.pk])),
        (client_for(doctor), reverse("lab:inbox")),
        (client_for(lab_tech), reverse("lab:worklist")),
        (client_for(lab_tech), reverse("lab:analyzers")),
        (client_for(lab_tech), reverse("lab:unmatched")),
        (client_for(lab_tech), reverse("lab:message", args=[AnalyzerMessage.objects.get().pk])),
    ]:
        r = client.get(url)
        assert r.status_code == 200 and len(r.content) < PAGE_BUDGET, url
        assert "style=" not in text(r) and "<script>" not in text(r), url


def test_the_technician_reads_her_reports_but_not_the_rest_of_the_record(
    client_for, lab_tech, doctor, complete, lab_pki, encounter
):
    from benhan.audit.chain import Actor
    from benhan.records import actions as records

    tech = client_for(lab_tech)
    tech.post(reverse("lab:sign", args=[complete.pk]), {"pin": PIN})
    complete.refresh_from_db()
    report = complete.report
    assert tech.get(reverse("records:pdf", args=[report.pk, 1])).status_code == 200
    # Another document of the same record stays closed to the laboratory.
    rec = records.do_open_record(Actor(doctor), encounter)
    other = records.do_create_document(Actor(doctor), rec, "treatment_sheet")
    assert tech.get(reverse("records:document", args=[other.pk])).status_code == 403
    # Reading is all: the technician does not edit or amend the report as a document.
    r = tech.post(reverse("records:amend", args=[report.pk]), {"reason": "Sửa lại kết quả kali"})
    assert r.status_code == 403
