"""Patient search: names with or without diacritics, identifiers, facility isolation.
Also the Vietnamese text and identifier helpers the search and forms rely on."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from benhan.audit.models import AuditEvent
from benhan.lib import ids
from benhan.lib.regions import ID_PROVINCE_CODES
from benhan.lib.vntext import is_plausible_name, search_key, search_terms, tidy_name, unaccent
from benhan.patients import search as patient_search

SEARCH = reverse("patients:search")


@pytest.fixture
def registry(patient, register_patient):
    """`patient` (Nguyễn Văn Ân) and a few neighbours whose names look alike."""
    return {
        "an": patient,
        "dang": register_patient(
            full_name="Đặng Thị Hoa",
            birth_year=1972,
            sex="F",
            phone="0383555666",
            cccd="001172000111",
        ),
        "anh": register_patient(full_name="Nguyễn Văn Anh", birth_year=2001, sex="M"),
        "binh": register_patient(full_name="Trần Thị Bình", birth_year=1990, sex="F"),
        "nga": register_patient(full_name="Phạm Ngọc Ngà", birth_year=1968, sex="F"),
    }


@pytest.fixture
def find(registry, doctor, client_for):
    """find(q) -> the set of registry keys the search page returns for q."""
    client = client_for(doctor)
    by_pk = {p.pk: key for key, p in registry.items()}

    def run(q: str) -> set[str]:
        r = client.get(SEARCH, {"q": q})
        assert r.status_code == 200
        return {by_pk.get(p.pk, p.pk) for p in r.context["results"]}

    return run


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("nguyen van an", {"an", "anh"}),  # every word a prefix: "an" also starts "anh"
        ("Nguyễn Văn Ân", {"an", "anh"}),
        ("nguyen van anh", {"anh"}),
        ("NGUYEN VAN AN", {"an", "anh"}),
        ("  nguyen    van   an  ", {"an", "anh"}),
        ("van an", {"an", "anh"}),
        ("an nguyen", {"an", "anh"}),  # word order does not matter
        ("dang", {"dang"}),
        ("Đặng", {"dang"}),
        ("đặng thị", {"dang"}),
        ("DANG THI HOA", {"dang"}),
        ("ngu", {"an", "anh"}),
        ("ngoc nga", {"nga"}),
        ("nga", {"nga"}),  # a word prefix, not any substring: "Nguyễn" is not matched
        ("thi", {"dang", "binh"}),
        ("binh", {"binh"}),
        ("guyen", set()),  # inside a word: no match
        ("nguyen thi", set()),
        ("hoàng", set()),
    ],
)
def test_it_finds_names_with_or_without_diacritics(q, expected, find):
    """Each word of the query must start a word of the name; accents, case and
    spacing are ignored."""
    assert find(q) == expected


@pytest.mark.parametrize("q", ["ng", "a", "  an ", "đ", "n v", "--"])
def test_it_refuses_a_short_query(q, doctor, client_for, registry):
    """Fewer than 3 letters: no search is run and the user is told why."""
    client = client_for(doctor)
    client.cookies["django_language"] = "en"
    r = client.get(SEARCH, {"q": q})
    assert r.status_code == 200
    assert r.context["problem"] == "short"
    assert list(r.context["results"]) == []
    assert "at least 3" in r.content.decode()


def test_it_shows_the_form_without_a_query(doctor, client_for):
    r = client_for(doctor).get(SEARCH)
    assert r.status_code == 200
    assert r.context["results"] is None
    assert not AuditEvent.objects.filter(action="patient.search").exists()


@pytest.mark.parametrize(
    ("make_q", "key"),
    [
        (lambda r: r["an"].mrn, "an"),
        (lambda r: r["an"].cccd, "an"),
        (lambda r: "079 085 001 234", "an"),
        (lambda r: "0123456789", "an"),  # the 10-digit social-insurance number
        (lambda r: "DN4790123456789", "an"),
        (lambda r: "dn4790123456789", "an"),
        (lambda r: "GD4790123456789", "an"),  # a new card: same 10 digits, new category
        (lambda r: "0912345678", "an"),
        (lambda r: "0912 345 678", "an"),
        (lambda r: "091-234-5678", "an"),
        (lambda r: "+84912345678", "an"),
        (lambda r: "+84 912 345 678", "an"),
        (lambda r: "84912345678", "an"),
        (lambda r: "0383555666", "dang"),
        (lambda r: "001172000111", "dang"),
    ],
)
def test_it_finds_by_identifier(make_q, key, find, registry):
    """MRN, CCCD, insurance card (15 characters or the 10 digits) and phone."""
    assert find(make_q(registry)) == {key}


def test_it_finds_nothing_for_an_unknown_identifier(find):
    assert find("079085009999") == set()
    assert find("0999999999") == set()


def test_it_never_shows_another_facilitys_patients(registry, other_patient, find):
    """other_patient has the same phone and card and a matching name, elsewhere."""
    for q in ("nguyen van an", "0912345678", "DN4790123456789", "0123456789", other_patient.mrn):
        assert other_patient.pk not in find(q), q
    assert find(other_patient.cccd) == set()


def test_it_audits_searches(registry, doctor, client_for):
    """Each search is logged with its text and number of results."""
    client_for(doctor).get(SEARCH, {"q": "dang"})
    event = AuditEvent.objects.get(action="patient.search")
    assert event.actor == doctor
    assert event.detail == {"q": "dang", "count": 1}
    assert event.ip == "127.0.0.1"


def test_it_returns_only_the_results_fragment_to_htmx(registry, doctor, client_for):
    """With HX-Request the page sends only the results, not the whole page."""
    r = client_for(doctor).get(SEARCH, {"q": "dang"}, headers={"HX-Request": "true"})
    assert r.status_code == 200
    names = [t.name for t in r.templates]
    assert "patients/search_results.html" in names
    assert "base.html" not in names
    assert "patients/search.html" not in names
    html = r.content.decode()
    assert "<html" not in html
    assert "Đặng Thị Hoa" in html
    assert len(r.content) < 5 * 1024


def test_it_escapes_the_query(doctor, client_for):
    """The query is shown back escaped."""
    r = client_for(doctor).get(SEARCH, {"q": "<script>alert(1)</script>"})
    assert r.status_code == 200
    assert "<script>alert(1)</script>" not in r.content.decode()


def test_it_limits_the_results(register_patient, facility):
    """At most LIMIT patients, sorted by name."""
    for i in range(patient_search.LIMIT + 5):
        register_patient(full_name=f"Nguyễn Văn {'ABCDEFGHIJKLMNOPQRSTUVWXYZ'[i % 26]}ơn")
    found, problem = patient_search.search(facility.id, "nguyen")
    assert problem == ""
    assert len(found) == patient_search.LIMIT
    assert [p.name_key for p in found] == sorted(p.name_key for p in found)


# --- benhan.lib.vntext -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("Nguyễn Văn Ân", "Nguyen Van An"),
        ("Đặng Thị Đào", "Dang Thi Dao"),
        ("đường", "duong"),
        ("ĐỖ", "DO"),
        ("Phạm Ngọc Ngà", "Pham Ngoc Nga"),
        ("Hồ Chí Minh", "Ho Chi Minh"),
        ("Lữ Ưu Ơn", "Lu Uu On"),
        ("plain ascii", "plain ascii"),
        ("", ""),
    ],
)
def test_it_unaccents_vietnamese(text, plain):
    """Tone marks, hats, horns and the stroke of đ/Đ all go."""
    assert unaccent(text) == plain


def test_it_unaccents_decomposed_input():
    """Text typed with combining marks (NFD, as some keyboards send) gives the same key."""
    import unicodedata

    assert search_key(unicodedata.normalize("NFD", "Nguyễn Văn Đặng")) == " nguyen van dang"


def test_it_builds_search_keys():
    assert search_key("  Nguyễn   VĂN\tÂn ") == " nguyen van an"
    assert search_terms("Đặng  thị ") == ["dang", "thi"]
    assert search_terms("   ") == []


def test_it_tidies_names():
    import unicodedata

    decomposed = unicodedata.normalize("NFD", "Trần  Thị   Bình ")
    assert tidy_name(decomposed) == "Trần Thị Bình"
    assert unicodedata.is_normalized("NFC", tidy_name(decomposed))


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("Nguyễn Văn Ân", True),
        ("H'Hen Niê", True),
        ("Kim-Chi", True),
        ("Nguyễn Văn A.", True),
        ("<b>x</b>", False),
        ("Lê 3", False),
        ("a_b", False),
        ("", False),
        ("Lê  Văn", False),  # tidy_name runs first; double spaces never reach this
    ],
)
def test_it_judges_names(name, ok):
    assert is_plausible_name(name) is ok


# --- benhan.lib.ids ------------------------------------------------------------------------

PROVINCES = sorted(ID_PROVINCE_CODES)


@st.composite
def citizen_ids(draw):
    """A valid CCCD with the province, birth year and sex it encodes."""
    province = draw(st.sampled_from(PROVINCES))
    year = draw(st.integers(min_value=1900, max_value=2399))
    sex = draw(st.sampled_from(["M", "F"]))
    serial = draw(st.integers(min_value=0, max_value=999_999))
    digit = (year // 100 - 19) * 2 + (1 if sex == "F" else 0)
    number = f"{province}{digit}{year % 100:02d}{serial:06d}"
    return number, province, year, sex


@hsettings(max_examples=300, database=None, deadline=None)
@given(citizen_ids(), st.sampled_from(["", " ", ".", "-"]))
def test_it_parses_every_valid_cccd(cid, sep):
    """Every well-formed CCCD parses, in any grouping, and gives back the province,
    birth year and sex it was made from; the match check agrees."""
    number, province, year, sex = cid
    typed = sep.join(number[i : i + 3] for i in range(0, 12, 3))
    parsed = ids.parse_cccd(typed)
    assert parsed.number == number
    assert (parsed.province_code, parsed.birth_year, parsed.sex) == (province, year, sex)
    ids.check_cccd_matches(parsed, year, sex)
    other_sex = "F" if sex == "M" else "M"
    with pytest.raises(ValidationError):
        ids.check_cccd_matches(parsed, year, other_sex)
    with pytest.raises(ValidationError):
        ids.check_cccd_matches(parsed, year + 1, sex)


@hsettings(max_examples=200, database=None, deadline=None)
@given(st.text(alphabet="0123456789", min_size=0, max_size=20))
def test_it_refuses_digit_strings_that_are_not_cccds(digits):
    """Only 12 digits starting with a former province's code pass."""
    if len(digits) == 12 and digits[:3] in ID_PROVINCE_CODES:
        assert ids.parse_cccd(digits).number == digits
    else:
        with pytest.raises(ValidationError):
            ids.parse_cccd(digits)


@hsettings(max_examples=200, database=None, deadline=None)
@given(
    st.sampled_from(sorted(ids.INSURANCE_CATEGORIES)),
    st.integers(min_value=1, max_value=5),
    st.sampled_from(sorted({c[1:] for c in PROVINCES} | {"97", "98"})),
    st.integers(min_value=0, max_value=10**10 - 1),
)
def test_it_parses_every_valid_insurance_card(category, level, province, serial):
    """A 15-character card round-trips its parts; its last 10 digits stand alone too."""
    number = f"{category}{level}{province}{serial:010d}"
    card = ids.parse_insurance_card(number.lower())
    assert card.number == number
    assert (card.category, card.benefit_level, card.province_code) == (category, level, province)
    assert card.social_insurance_number == f"{serial:010d}"
    assert ids.parse_insurance_card(card.social_insurance_number).number == f"{serial:010d}"


@pytest.mark.parametrize(
    ("raw", "phone"),
    [
        ("0912345678", "0912345678"),
        ("+84912345678", "0912345678"),
        ("84912345678", "0912345678"),
        ("(091) 234-5678", "0912345678"),
        ("02838123456", "02838123456"),  # 11-digit landline
    ],
)
def test_it_parses_phones(raw, phone):
    assert ids.parse_phone(raw) == phone


@pytest.mark.parametrize("raw", ["912345678", "+1 555 123 4567", "0912", "09123456789012", "abc"])
def test_it_refuses_bad_phones(raw):
    with pytest.raises(ValidationError):
        ids.parse_phone(raw)


def test_it_finds_a_renamed_patient_by_the_new_name_only(registry, receptionist, find):
    """The name index follows edits (a trigger keeps SQLite's FTS table in step)."""
    from benhan.audit.chain import Actor
    from benhan.patients.actions import do_update_patient

    do_update_patient(Actor(receptionist), registry["binh"], {"full_name": "Trần Thị Bích"})
    assert find("bich") == {"binh"}
    assert find("binh") == set()


@pytest.mark.parametrize(
    "q", ['nguyen"', "van AND an", "an*", "nguyen -van", "h'mong", "(an)", "NEAR(an van)", "^an"]
)
def test_it_survives_query_syntax_characters(q, find):
    """Characters that mean something to a full-text engine are plain text here."""
    find(q)  # 200 and a result list, never an error


def test_it_uses_each_databases_name_index(registry, facility):
    """The fast paths are in use on the database the suite runs on."""
    from django.db import connection

    found, problem = patient_search.search(facility.pk, "nguyen van an")
    assert problem == ""
    assert {p.full_name for p in found} == {"Nguyễn Văn Ân", "Nguyễn Văn Anh"}
    if connection.vendor == "sqlite":
        assert patient_search._sqlite_has_fts()
