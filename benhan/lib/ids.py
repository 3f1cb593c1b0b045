"""Vietnamese identifiers: citizen ID (CCCD), health-insurance card, phone number.

Each parse_* function returns the normalised value or raises ValidationError with a
message marked for translation, so forms and importers share one set of rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from benhan.lib.regions import ID_PROVINCE_CODES

# CCCD digit 4 gives the century of birth and the sex (Circular 07/2016/TT-BCA, art. 7):
# 1900s male 0 / female 1, 2000s 2 / 3, 2100s 4 / 5, 2200s 6 / 7, 2300s 8 / 9.
_CENTURY_BASE = {0: 1900, 1: 2000, 2: 2100, 3: 2200, 4: 2300}


@dataclass(frozen=True)
class CitizenId:
    number: str
    province_code: str
    birth_year: int
    sex: str  # "M" or "F"


def parse_cccd(raw: str) -> CitizenId:
    """Check the structure of a 12-digit citizen ID number."""
    number = re.sub(r"[\s.\-]", "", raw or "")
    if not re.fullmatch(r"\d{12}", number):
        raise ValidationError(_("A citizen ID (CCCD) number has exactly 12 digits."))
    province = number[:3]
    if province not in ID_PROVINCE_CODES:
        raise ValidationError(
            _("The first three digits (%(code)s) are not a province code.") % {"code": province}
        )
    digit = int(number[3])
    century = _CENTURY_BASE[digit // 2]
    sex = "M" if digit % 2 == 0 else "F"
    return CitizenId(number, province, century + int(number[4:6]), sex)


def check_cccd_matches(cid: CitizenId, birth_year: int | None, sex: str | None) -> None:
    """The century/sex digit and the year digits must agree with the patient's data."""
    if sex in {"M", "F"} and cid.sex != sex:
        raise ValidationError(
            _("The citizen ID's 4th digit says the holder is %(sex)s, which does not match.")
            % {"sex": _("male") if cid.sex == "M" else _("female")}
        )
    if birth_year is not None and cid.birth_year != birth_year:
        raise ValidationError(
            _("The citizen ID encodes birth year %(year)s, not the year entered.")
            % {"year": cid.birth_year}
        )


# Beneficiary categories printed on 15-character cards (Decision 1351/QĐ-BHXH and
# later amendments).
_CATEGORY_TABLE = """
DN HX CH NN TK HC XK CA HT TB MS XB XN TN CC CK CB KC HD TE BT HN DT DK XD TS TC TQ TA
TY HG LS PV CN HS GD TL XV NO QN CY ND
"""
INSURANCE_CATEGORIES = frozenset(_CATEGORY_TABLE.split())
# Social-insurance province codes: the former provinces' 2-digit codes, plus the
# armed forces' own funds (97 Ministry of Defence, 98 Ministry of Public Security).
_INSURANCE_PROVINCES = {code[1:] for code in ID_PROVINCE_CODES} | {"97", "98"}


@dataclass(frozen=True)
class InsuranceCard:
    number: str  # as stored: 15 characters, or the 10-digit social-insurance number
    category: str = ""
    benefit_level: int | None = None
    province_code: str = ""

    @property
    def social_insurance_number(self) -> str:
        return self.number[-10:]


def parse_insurance_card(raw: str) -> InsuranceCard:
    """A 15-character card number (e.g. DN4790123456789) or the 10-digit form."""
    number = re.sub(r"[\s.\-]", "", raw or "").upper()
    if re.fullmatch(r"\d{10}", number):
        return InsuranceCard(number)
    m = re.fullmatch(r"([A-Z]{2})(\d)(\d{2})(\d{10})", number)
    if not m:
        raise ValidationError(
            _(
                "A health-insurance card number is 15 characters (2 letters, benefit "
                "level, 2-digit province, 10 digits) or the 10-digit social-insurance number."
            )
        )
    category, level, province, _rest = m.groups()
    if category not in INSURANCE_CATEGORIES:
        raise ValidationError(
            _("%(code)s is not a health-insurance beneficiary category.") % {"code": category}
        )
    if not 1 <= int(level) <= 5:
        raise ValidationError(_("The benefit level (3rd character) must be 1 to 5."))
    if province not in _INSURANCE_PROVINCES:
        raise ValidationError(
            _("%(code)s is not a social-insurance province code.") % {"code": province}
        )
    return InsuranceCard(number, category, int(level), province)


def parse_phone(raw: str) -> str:
    """A Vietnamese phone number in national form: 0 followed by 9 or 10 digits."""
    number = re.sub(r"[\s.\-()]", "", raw or "")
    if number.startswith("+84"):
        number = "0" + number[3:]
    elif number.startswith("84") and len(number) == 11:
        number = "0" + number[2:]
    if not re.fullmatch(r"0\d{9,10}", number):
        raise ValidationError(_("A phone number is 10 digits starting with 0 (or +84)."))
    return number


def parse_facility_code(raw: str) -> str:
    """The 5-character facility code used in insurance data (e.g. 79001)."""
    code = (raw or "").strip().upper()
    if not re.fullmatch(r"[0-9A-Z]{5}", code):
        raise ValidationError(_("A facility code has 5 characters (digits or letters)."))
    return code
