"""ASTM E1394 / CLSI LIS2-A2 record samples for the tests.

Written for this project; the values, names and identifiers are invented. Each sample
follows a public layout, named above it: the field positions of CLSI LIS2-A2 (sections
"Message Header Record", "Patient Information Record", "Test Order Record", "Result
Record", "Comment Record", "Request Information Record", "Manufacturer Information
Record", "Message Terminator Record"), and where a vendor's habit is imitated, the layout
its published host-interface manual shows (Sysmex XN-style sample id in O.4 and test id
"^^^^WBC^1"; Roche cobas-style Q.3 "^^sample^sequence^rack^position…"). Records are
separated by CR as on the wire.
"""

from __future__ import annotations


def _join(*records: str) -> str:
    return "\r".join(records) + "\r"


# CLSI LIS2-A2 example layout: chemistry, one specimen, five results; O.3 carries the
# host's specimen id with tray and position components ("SID^tray^position"); a C comment
# from the instrument follows the glucose result.
CHEMISTRY = _join(
    r"H|\^&|MSG0001||CHEM-200^2.1^SN8812|||||BENHAN||P|LIS2-A2|20250314093015",
    r"P|1||BN0001234||Nguyen^Van An||19800512|M",
    r"O|1|250314001^1^3||^^^GLU\^^^URE\^^^CRE\^^^AST\^^^ALT|R|20250314081000|20250314080500"
    r"|||||||20250314083000|serum||||||||||F",
    r"R|1|^^^GLU^Glucose|5.6|mmol/L|3.9 to 6.4|N||F||tech1|20250314092000|20250314092900|CHEM-200",
    r"C|1|I|Hemolysis index 12^within limits|G",
    r"R|2|^^^URE^Urea|7.9|mmol/L|2.5 to 7.5|H||F||tech1|20250314092000|20250314092910|CHEM-200",
    r"R|3|^^^CRE^Creatinine|<18|umol/L|62 to 106|L||F||tech1|20250314092000|20250314092920"
    r"|CHEM-200",
    r"R|4|^^^AST^AST (GOT)|35|U/L|0 to 37|N||F||tech1|20250314092000|20250314092930|CHEM-200",
    r"R|5|^^^ALT^ALT (GPT)|41|U/L|0 to 40|H||C||tech1|20250314092000|20250314092940|CHEM-200",
    r"L|1|N",
)

# Sysmex XN-style hematology: the sample number is in O.4 as "^^<padded id>^B" (O.3
# empty), test ids "^^^^CODE^1" (code in the 5th component, then the dilution), the
# completion time in R.13, twenty parameters.
_HEMA = [
    ("WBC", "7.45", "10*3/uL", ""), ("RBC", "4.62", "10*6/uL", ""),
    ("HGB", "13.8", "g/dL", ""), ("HCT", "41.2", "%", ""), ("MCV", "89.2", "fL", ""),
    ("MCH", "29.9", "pg", ""), ("MCHC", "33.5", "g/dL", ""), ("PLT", "412", "10*3/uL", "H"),
    ("NEUT%", "61.3", "%", ""), ("LYMPH%", "28.1", "%", ""), ("MONO%", "7.2", "%", ""),
    ("EO%", "2.9", "%", ""), ("BASO%", "0.5", "%", ""), ("NEUT#", "4.57", "10*3/uL", ""),
    ("LYMPH#", "2.09", "10*3/uL", ""), ("MONO#", "0.54", "10*3/uL", ""),
    ("EO#", "0.22", "10*3/uL", ""), ("BASO#", "0.04", "10*3/uL", ""),
    ("RDW-SD", "42.1", "fL", ""), ("MPV", "10.4", "fL", ""),
]  # fmt: skip
HEMATOLOGY = _join(
    r"H|\^&|||XN-350^00-19^11001^^^^12345678||||||||E1394-97",
    r"P|1|||||||U",
    r"O|1||^^          250314002^B|" + "\\".join(f"^^^^{c}^1" for c, *_ in _HEMA)
    + r"|||||||N||||||||||||||F",
    *(
        f"R|{i}|^^^^{c}^1|{v}|{u}||{f or 'N'}||||||20250314094501"
        for i, (c, v, u, f) in enumerate(_HEMA, 1)
    ),
    r"L|1|N",
)  # fmt: skip
HEMATOLOGY_CODES = [c for c, *_ in _HEMA]

# CLSI LIS2-A2 layout, quality control: action code Q in O.12 marks a control specimen.
QC = _join(
    r"H|\^&|||CHEM-200^2.1|||||||P|LIS2-A2|20250314070000",
    r"P|1",
    r"O|1|QC-LOT4411^L1||^^^GLU\^^^CRE|R||||||Q||||||||||||||F",
    r"R|1|^^^GLU|5.52|mmol/L|5.1 to 6.1|N||F||||20250314070500",
    r"R|2|^^^CRE|92|umol/L|85 to 101|N||F||||20250314070510",
    r"L|1|N",
)

# CLSI LIS2-A2 "Request Information Record": the analyzer asks for the orders of a
# specimen (Q.3 = patient id ^ specimen id), all tests (Q.5 ALL), status O.
QUERY = _join(
    r"H|\^&|||CHEM-200^2.1|||||||P|LIS2-A2|20250314100000",
    r"Q|1|^250314001||ALL||||||||O",
    r"L|1|N",
)

# Two Q records, one with two specimen ids as repeats, one in the Roche cobas-style
# layout (Q.3 "^^sample id^sequence^rack^position^…").
QUERY_MANY = _join(
    r"H|\^&|||CHEM-200^2.1|||||||P|LIS2-A2|20250314100001",
    r"Q|1|^250314001\^250314004||ALL||||||||O",
    r"Q|2|^^250314003^0^50001^001^S1^SC||ALL||||||||O",
    r"L|1|N",
)

# LIS2-A2 layout, with results followed by manufacturer (M) records and a record type
# the standard does not define (here "S"), which must be kept, not refused.
WITH_MANUFACTURER = _join(
    r"H|\^&|MSG0042||CHEM-200^2.1|||||||P|LIS2-A2|20250314110000",
    r"P|1||BN0001299",
    r"O|1|250314005||^^^K\^^^NA|S||||||||||serum||||||||||F",
    r"C|1|L|Sample lipemic^re-run advised|G",
    r"R|1|^^^K^Potassium|4.2|mmol/L|3.5 to 5.1|N||F||||20250314105900",
    r"M|1|REAGENT^K^LOT5521^20260131",
    r"R|2|^^^NA^Sodium|139|mmol/L|135 to 145|N||F||||20250314105905",
    r"M|2|CALIBRATION^NA^20250310",
    r"S|1|vendor-defined scientific record",
    r"L|1|N",
)

# Non-default delimiters declared by the H record: field "!", repeat "@", component "#",
# escape "$" (LIS2-A2 lets the sender choose them).
ODD_DELIMITERS = _join(
    r"H!@#$!MSG7!!ODD-9000#1!!!!!!!P!LIS2-A2!20250314120000",
    r"P!1!!BN0007777",
    r"O!1!250314007#4#1!!###GLU@###K!R",
    r"R!1!###GLU#Glucose!5.1!mmol/L!3.9 to 6.4!N!!F!!!!20250314115900",
    r"R!2!###K#Potassium!4.4$F$hemolysed!mmol/L!3.5 to 5.1!A@H!!F!!!!20250314115910",
    r"L!1!N",
)


def vietnamese(name: str = "Nguyễn^Thị Hoà") -> str:
    """LIS2-A2 layout with a Vietnamese patient name (P.6)."""
    return _join(
        r"H|\^&|||CHEM-200^2.1|||||||P|LIS2-A2|20250314130000",
        rf"P|1||BN0004321||{name}||19921103|F",
        r"O|1|250314008||^^^GLU|R",
        r"R|1|^^^GLU^Glucose|6.1|mmol/L|3.9 to 6.4|N||F||||20250314125900",
        r"L|1|N",
    )


def chemistry_for(specimen_id: str, n: int = 6) -> str:
    """A LIS2-A2-layout chemistry message with n results for the given specimen."""
    tests = [("GLU", "5.6", "mmol/L"), ("URE", "5.1", "mmol/L"), ("CRE", "80", "umol/L"),
             ("AST", "28", "U/L"), ("ALT", "22", "U/L"), ("K", "4.1", "mmol/L"),
             ("NA", "140", "mmol/L"), ("CL", "101", "mmol/L")][:n]  # fmt: skip
    return _join(
        r"H|\^&|||CHEM-200^2.1|||||||P|LIS2-A2|20250314140000",
        r"P|1",
        rf"O|1|{specimen_id}||" + "\\".join(f"^^^{c}" for c, *_ in tests) + "|R",
        *(f"R|{i}|^^^{c}|{v}|{u}||N||F||||20250314140000" for i, (c, v, u) in
          enumerate(tests, 1)),
        r"L|1|N",
    )  # fmt: skip
