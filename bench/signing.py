"""Signing latency: one PAdES signature with a loaded key, the complete two staff
signatures + seal sequence on a 2-page PDF, and verify_pdf on a sealed document.

    .venv/bin/python bench/signing.py [--runs 30]

Uses a throwaway SQLite database in /tmp/bench-signing (migrated and given a facility,
a doctor and a nurse with certificates on first run). In-process, time.perf_counter,
after warm-up. Targets (issue 3): one signature <= 25 ms median; the sequence
<= 150 ms median; verify_pdf on a sealed document <= 100 ms.

"one signature" is PAdES B-LT (timestamp from the built-in TSA, CRLs and certificates
embedded) with the staff key already unlocked; "PIN unlock" is what the PIN costs on
top (scrypt at the configured SIGNING_PIN_KDF_COST). The sequence unlocks both staff
keys with their PINs, as two real signing actions would, and the seal ends with its
document timestamp (B-LTA).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("BENHAN_DATA_DIR", str(Path(tempfile.gettempdir()) / "bench-signing"))
os.environ.setdefault("BENHAN_DB", "sqlite")

from _common import print_table, progress, save_result, setup_django

PIN, NURSE_PIN = "260719", "481516"
TEMPLATE = """#set page(paper: "a4", margin: 2cm)
#set text(font: "DejaVu Sans", size: 11pt, lang: "vi")
= Giấy ra viện
Họ và tên người bệnh: Nguyễn Văn Ân — Khoa Nội
#pagebreak()
Trang 2: chữ ký của bác sĩ điều trị, điều dưỡng và con dấu của cơ sở.
"""


def timed(fn, runs: int) -> list[float]:
    fn()  # warm-up
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    setup_django()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import typst

    from benhan.accounts.models import Facility, Role, User
    from benhan.signing import pades, pki, tsa
    from benhan.signing.verify import verify_pdf

    facility, _ = Facility.objects.get_or_create(
        code="79998", defaults={"name": "Trung tâm Y tế huyện Bench"}
    )
    pki.ensure_facility_pki(facility)
    people = {}
    for username, name, role, pin in (
        ("bench_sign_doctor", "Trần Thị Mai", Role.DOCTOR, PIN),
        ("bench_sign_nurse", "Lê Thị Hồng", Role.NURSE, NURSE_PIN),
    ):
        user, _created = User.objects.get_or_create(
            username=username, defaults={"full_name": name, "role": role, "facility": facility}
        )
        cred = pki.active_credential(user)
        if cred is None or not cred.is_usable:
            cred = pki.issue_staff_credential(user, pin)
        people[username] = cred
    doctor, nurse = people["bench_sign_doctor"], people["bench_sign_nurse"]
    pdf = typst.compile(
        TEMPLATE.encode(), font_paths=["/usr/share/fonts/truetype/dejavu"], ignore_system_fonts=True
    )
    stamper = tsa.get_timestamper(facility)
    doctor_signer = pades.signer_for_credential(doctor, PIN)
    box = (60, 600, 300, 680)
    lines = ["Ký bởi: Trần Thị Mai", "Bác sĩ", "27/11/2026 10:15"]

    def one():
        pades.sign_pdf(pdf, signer=doctor_signer, field_name="sig", page=1, box=box,
                       stamp_lines=lines, timestamper=stamper)  # fmt: skip

    def one_bt():
        pades.sign_pdf(pdf, signer=doctor_signer, field_name="sig", page=1, box=box,
                       stamp_lines=lines, timestamper=stamper,
                       embed_validation_info=False)  # fmt: skip

    def unlock():
        pki.load_private_key(doctor, PIN)

    def sequence():
        out = pades.sign_pdf(pdf, signer=pades.signer_for_credential(doctor, PIN),
                             field_name="sig_doctor", page=1, box=box, stamp_lines=lines,
                             timestamper=stamper)  # fmt: skip
        out = pades.sign_pdf(out, signer=pades.signer_for_credential(nurse, NURSE_PIN),
                             field_name="sig_nurse", page=1, box=(320, 600, 560, 680),
                             stamp_lines=["Ký bởi: Lê Thị Hồng", "Điều dưỡng"],
                             timestamper=stamper)  # fmt: skip
        return pades.sign_pdf(out, signer=pades.seal_signer(facility), field_name="seal",
                              page=1, box=(60, 480, 300, 560),
                              stamp_lines=["Trung tâm Y tế huyện Bench", "Đóng dấu"],
                              timestamper=stamper, seal=True)  # fmt: skip

    sealed = sequence()
    assert verify_pdf(sealed).ok

    rows, results = [], {}
    for name, fn, target in (
        ("one signature, loaded key (B-LT)", one, 25),
        ("one signature, loaded key (B-T)", one_bt, 25),
        ("PIN unlock (scrypt)", unlock, None),
        ("2 signatures + seal (with PINs)", sequence, 150),
        ("verify_pdf, sealed document", lambda: verify_pdf(sealed), 100),
    ):
        progress(name)
        samples = timed(fn, args.runs)
        med = statistics.median(samples)
        results[name] = {"median_ms": med, "min_ms": min(samples), "max_ms": max(samples)}
        verdict = "-" if target is None else ("met" if med <= target else "MISSED")
        rows.append([name, med, min(samples), max(samples), target or "-", verdict])
    print_table(["step", "median ms", "min", "max", "target", ""], rows,
                title=f"Signing ({args.runs} runs, SIGNING_PIN_KDF_COST="
                f"{settings.SIGNING_PIN_KDF_COST}, {settings.SIGNING_KEY_TYPE})")  # fmt: skip
    print(f"\nsealed document: {len(sealed):,} bytes (from {len(pdf):,})")
    save_result("signing", {"runs": args.runs, "results": results, "pdf_bytes": len(sealed)})


if __name__ == "__main__":
    main()
