"""Edges found by review: NUL bytes, over-long reasons, audited refusals and staff changes."""

import pytest
from django.urls import reverse

from benhan.audit.chain import verify
from benhan.audit.models import AuditEvent, BreakGlassGrant


@pytest.mark.parametrize(
    ("method", "url", "data"),
    [
        ("get", "/patients/?q=ng%00uyen", None),
        ("get", "/encounters/icd10/?q=E1%001", None),
        ("get", "/audit/?mrn=26%00", None),
    ],
)
def test_it_answers_400_to_nul_bytes_in_the_query(
    client_for, receptionist, admin, method, url, data
):
    """A NUL character never reaches a view (PostgreSQL would fail on it with a 500)."""
    user = admin if url.startswith("/audit/") else receptionist
    response = getattr(client_for(user), method)(url)
    assert response.status_code == 400


def test_it_answers_400_to_nul_bytes_in_a_form(client_for, outsider_doctor, patient):
    response = client_for(outsider_doctor).post(
        reverse("patients:break_glass", args=[patient.pk]),
        {"reason": "Cấp cứu\x00 ngừng tim"},
    )
    assert response.status_code == 400
    assert not BreakGlassGrant.objects.exists()


def test_it_refuses_an_over_long_break_glass_reason(client_for, outsider_doctor, patient):
    response = client_for(outsider_doctor).post(
        reverse("patients:break_glass", args=[patient.pk]), {"reason": "x" * 1001}
    )
    assert response.status_code == 403
    assert not BreakGlassGrant.objects.exists()


def test_it_audits_a_refusal_with_the_patient(client_for, outsider_doctor, patient):
    """Someone probing another department's patient leaves a trace."""
    response = client_for(outsider_doctor).get(reverse("patients:detail", args=[patient.pk]))
    assert response.status_code == 403
    event = AuditEvent.objects.get(action="access.denied")
    assert event.actor == outsider_doctor
    assert event.patient_id == patient.pk
    assert event.detail["path"] == reverse("patients:detail", args=[patient.pk])
    assert verify()[1] == []


def test_it_does_not_name_the_patient_on_a_plain_refusal(client_for, receptionist, encounter):
    """A receptionist refused the clinical page sees no break-the-glass form."""
    response = client_for(receptionist).get(reverse("encounters:detail", args=[encounter.pk]))
    assert response.status_code == 403
    assert b"break-glass" not in response.content
    event = AuditEvent.objects.get(action="access.denied")
    assert event.detail["path"] == reverse("encounters:detail", args=[encounter.pk])


def test_it_audits_staff_role_and_department_changes_in_admin(client_for, admin, nurse, khoa_ngoai):
    """Role and departments decide access to patients, so changing them is audited."""
    client = client_for(admin)
    url = reverse("admin:accounts_user_change", args=[nurse.pk])
    response = client.post(
        url,
        {
            "username": nurse.username,
            "full_name": nurse.full_name,
            "title": "",
            "practising_certificate": "",
            "facility": nurse.facility_id,
            "role": "doctor",
            "departments": [khoa_ngoai.pk],
            "is_active": "on",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    event = AuditEvent.objects.get(action="staff.change")
    assert event.actor == admin
    assert event.detail["old"]["role"] == "nurse"
    assert event.detail["new"]["role"] == "doctor"
    assert event.detail["new"]["departments"] == [khoa_ngoai.code]


def test_it_keeps_the_query_string_when_asking_for_the_second_factor(client_for, doctor):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    TOTPDevice.objects.create(user=doctor, name="phone", confirmed=True)
    response = client_for(doctor, verified=False).get("/patients/?q=nguyen van")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/2fa/?next=%2Fpatients%2F%3Fq%3Dnguyen%2520van"
