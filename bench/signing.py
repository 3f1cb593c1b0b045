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


def timed(fn, runs: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU (this process) milliseconds per run, after one warm-up.

    CPU time is reported beside wall time because other work may share the cores:
    a run preempted by another process costs wall time, not CPU time.
    """
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        fn()
        cpu.append((time.process_time() - c) * 1000)
        wall.append((time.perf_counter() - t) * 1000)
    return wall, cpu


def build():
    """Set up the facility, the staff and the PDF; return (steps, sealed, settings)."""
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

    def one_cold():
        pades._stamp_font_data().subset.cache_clear()  # a stamp text never seen before
        one()

    def unlock():
        pki.load_private_key(doctor, PIN)

    nurse_signer = pades.signer_for_credential(nurse, NURSE_PIN)

    def sequence(unlocked=False):
        d_signer = doctor_signer if unlocked else pades.signer_for_credential(doctor, PIN)
        n_signer = nurse_signer if unlocked else pades.signer_for_credential(nurse, NURSE_PIN)
        out = pades.sign_pdf(pdf, signer=d_signer,
                             field_name="sig_doctor", page=1, box=box, stamp_lines=lines,
                             timestamper=stamper)  # fmt: skip
        out = pades.sign_pdf(out, signer=n_signer,
                             field_name="sig_nurse", page=1, box=(320, 600, 560, 680),
                             stamp_lines=["Ký bởi: Lê Thị Hồng", "Điều dưỡng"],
                             timestamper=stamper)  # fmt: skip
        return pades.sign_pdf(out, signer=pades.seal_signer(facility), field_name="seal",
                              page=1, box=(60, 480, 300, 560),
                              stamp_lines=["Trung tâm Y tế huyện Bench", "Đóng dấu"],
                              timestamper=stamper, seal=True)  # fmt: skip

    sealed = sequence()
    assert verify_pdf(sealed).ok
    steps = (
        ("one signature, loaded key (B-LT)", one, 25),
        ("one signature, loaded key (B-T)", one_bt, 25),
        ("one signature, B-LT, stamp font subset not cached", one_cold, None),
        ("PIN unlock (scrypt)", unlock, None),
        ("2 signatures + seal (with PINs)", sequence, 150),
        ("2 signatures + seal (keys unlocked)", lambda: sequence(unlocked=True), 150),
        ("verify_pdf, sealed document", lambda: verify_pdf(sealed), 100),
    )
    return steps, sealed, pdf, settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument(
        "--profile", metavar="N", type=int, help="profile step N (0-based; needs pyinstrument)"
    )
    args = ap.parse_args()
    steps, sealed, pdf, settings = build()
    if args.profile is not None:
        from pyinstrument import Profiler  # not a requirement: pip install it to profile

        name, fn, _target = steps[args.profile]
        fn()
        prof = Profiler(interval=0.0005)
        prof.start()
        for _ in range(args.runs):
            fn()
        prof.stop()
        print(name)
        print(
            prof.output_text(
                color=False,
                show_all=bool(os.environ.get("PROFILE_ALL")),
                processor_options={"filter_threshold": 0.02},
            )
        )
        return

    rows, results = [], {}
    load_before = os.getloadavg()
    for name, fn, target in steps:
        progress(name)
        samples, cpu = timed(fn, args.runs)
        med = statistics.median(samples)
        results[name] = {"median_ms": med, "min_ms": min(samples), "max_ms": max(samples),
                         "cpu_median_ms": statistics.median(cpu)}  # fmt: skip
        verdict = "-" if target is None else ("met" if med <= target else "MISSED")
        rows.append([name, med, min(samples), max(samples), statistics.median(cpu),
                     target or "-", verdict])  # fmt: skip
    print(f"load average before: {load_before}, after: {os.getloadavg()}")
    print_table(["step", "median ms", "min", "max", "CPU ms", "target", ""], rows,
                title=f"Signing ({args.runs} runs, SIGNING_PIN_KDF_COST="
                f"{settings.SIGNING_PIN_KDF_COST}, {settings.SIGNING_KEY_TYPE})")  # fmt: skip
    print(f"\nsealed document: {len(sealed):,} bytes (from {len(pdf):,})")
    save_result("signing", {"runs": args.runs, "results": results, "pdf_bytes": len(sealed)})


if __name__ == "__main__":
    main()
