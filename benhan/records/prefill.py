"""Data for documents: pre-filling a draft, and the context a template renders."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from benhan.patients.ethnicities import ETHNICITY_NAMES
from benhan.records import formtypes
from benhan.records.paper import paper_url

_SEX = {"M": "Nam", "F": "Nữ"}
_DT = "%d/%m/%Y %H:%M"


def _local(dt) -> str:
    return timezone.localtime(dt).strftime(_DT) if dt else ""


def _diagnoses(encounter) -> str:
    lines = []
    for d in encounter.active_diagnoses():
        title = d.code.title_vi or d.code.title_en
        lines.append(f"{d.code_id} {title}" + ("" if d.is_main else " (bệnh kèm theo)"))
    return "\n".join(lines)


def prefill(form: formtypes.FormType, encounter) -> dict[str, Any]:
    """Initial draft values from the encounter, for fields that name a source."""
    from benhan.records import billing

    lines = form.field("lines").columns if any(f.name == "lines" for f in form.fields) else ()
    sources = {
        "diagnoses": lambda: _diagnoses(encounter),
        "reason": lambda: encounter.reason,
        "started_at": lambda: _local(encounter.started_at),
        "ended_at": lambda: _local(encounter.ended_at),
        "coverage": lambda: billing.coverage_percent(encounter),
        "route": lambda: _route(encounter),
        "days": lambda: billing.days(encounter),
        "charges": lambda: billing.format_table(billing.charge_lines(encounter), lines),
    }
    return {f.name: sources[f.prefill]() for f in form.fields if f.prefill in sources}


def _route(encounter) -> str:
    patient = encounter.patient
    if encounter.kind == "emergency":
        return "Cấp cứu"
    if patient.insurance_facility_code == encounter.facility.code:
        return "Đúng tuyến"
    return "Thông tuyến" if patient.insurance_number else ""


def structured(form: formtypes.FormType, data: dict[str, Any]) -> dict[str, Any]:
    """Draft values as the template reads them: tables and lines become lists."""
    from benhan.records.billing import _number, parse_table

    out = {k: v for k, v in data.items() if not k.startswith("_")}
    for f in form.fields:
        value = out.get(f.name)
        if f.kind == "table":
            out[f.name] = parse_table(value, f.columns, f.numeric)
        elif f.kind == "lines":
            out[f.name] = [ln.strip() for ln in str(value or "").splitlines() if ln.strip()]
        elif f.kind == "number" and value not in (None, ""):
            out[f.name] = _number(value)
    return out


def document_context(doc, data: dict[str, Any], version: int) -> dict[str, Any]:
    """Everything a template prints: facility, patient, encounter, fields, signers."""
    rec = doc.record
    encounter = rec.encounter
    patient = encounter.patient
    facility = doc.facility
    form = doc.type
    main = encounter.main_diagnosis
    base = getattr(settings, "PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
    return {
        "facility": {
            "name": facility.name,
            "code": facility.code,
            "address": facility.address,
            "parent": getattr(settings, "FACILITY_PARENT", ""),
        },
        "department": encounter.department.name,
        "form": {"code": form.form_number, "title": form.title, "type": form.code},
        "record": {"number": rec.number, "document_number": doc.number, "version": version},
        "patient": {
            "full_name": patient.full_name,
            "mrn": patient.mrn,
            "birth": patient.birth_display,
            "age": patient.age(),
            "sex": _SEX.get(patient.sex, ""),
            "ethnicity": ETHNICITY_NAMES.get(patient.ethnicity, ""),
            "occupation": patient.occupation,
            "address": ", ".join(p for p in (patient.address, patient.province_name) if p),
            "insurance_number": patient.insurance_number,
            "insurance_valid_to": patient.insurance_valid_to.strftime("%d/%m/%Y")
            if patient.insurance_valid_to
            else "",
            "cccd": patient.cccd or "",
        },
        "encounter": {
            "kind": encounter.get_kind_display(),
            "admitted_at": _local(encounter.started_at),
            "discharged_at": _local(encounter.ended_at),
            "department": encounter.department.name,
            "diagnosis_main": f"{main.code_id} {main.code.title_vi or main.code.title_en}"
            if main
            else "",
            "diagnosis_secondary": [
                f"{d.code_id} {d.code.title_vi or d.code.title_en}"
                for d in encounter.secondary_diagnoses
            ],
            "outcome": encounter.get_discharge_outcome_display()
            if encounter.discharge_outcome
            else "",
            "discharge_type": encounter.get_discharge_type_display()
            if encounter.discharge_type
            else "",
        },
        "fields": structured(form, data),
        "signatures": [
            {"slot": s.slot, "title": s.title, "name": _signer_name(encounter, s)}
            for s in form.signers
        ]
        + (
            [{"slot": "patient", "title": "NGƯỜI BỆNH / NGƯỜI ĐẠI DIỆN", "name": patient.full_name}]
            if form.patient_signs
            else []
        )
        + [{"slot": "seal", "title": "XÁC NHẬN CỦA CƠ SỞ", "name": facility.name}],
        "lookup": {
            "code": doc.lookup_code,
            "url": base + reverse("lookup", args=[doc.lookup_code]),
        },
        "mark": "Bản chuyển đổi từ hồ sơ bệnh án điện tử · Bệnh Án",
        # Imaging reports: the attached images (sha256 in the store), as SVG wrappers
        # Typst can place (it reads SVG with embedded JPEG/PNG data).
        "image_svgs": _image_svgs(data.get("images")),
        # Forms signed by hand carry a second QR code: the upload page for their paper.
        "paper": {"url": paper_url(doc.pk, version)} if form.patient_signs else {},
    }


def _signer_name(encounter, slot: formtypes.SignatureSlot) -> str:
    if slot.attending_only and encounter.attending:
        a = encounter.attending
        return f"{a.title} {a.full_name}".strip()
    return ""


def _image_svgs(value) -> list[str]:
    import base64
    import io

    from PIL import Image

    from benhan.records.storage import default_store

    shas = value if isinstance(value, list) else str(value or "").split()
    out = []
    for sha in shas:
        data = default_store().get(sha)
        with Image.open(io.BytesIO(data)) as im:
            w, h, fmt = im.width, im.height, (im.format or "JPEG").lower()
        mime = "image/png" if fmt == "png" else "image/jpeg"
        b64 = base64.b64encode(data).decode("ascii")
        out.append(
            f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'viewBox="0 0 {w} {h}" width="{w}" height="{h}"><image width="{w}" height="{h}" '
            f'xlink:href="data:{mime};base64,{b64}"/></svg>'
        )
    return out
