"""Personas and shared setup for the whole suite.

One facility (Trung tâm Y tế huyện Củ Chi) with four departments and one staff
member per role, a second facility with its own doctor and patient, and `patient`:
registered at the desk and admitted to Khoa Nội. Like healthchecks' alice/bob/charlie,
every test file uses the same people:

* doctor, nurse           Khoa Nội: the patient's care team
* lab_tech                Khoa Xét nghiệm (paraclinical)
* records_officer         reads every patient of the facility, writes nothing clinical
* receptionist            identity data only
* admin                   configures the system, never reads patient data; 2FA required
* outsider_doctor         Khoa Ngoại: must break the glass for Nội's patients
* other_facility_doctor   another facility: Nội's patients do not exist for them

Everything is created per test inside the test's transaction, so the fixtures are
safe under pytest-xdist (each worker has its own test database).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from benhan.accounts.models import Department, Facility, Role, User
from benhan.audit.chain import Actor
from benhan.encounters.models import Encounter, Icd10Code

# The lab fixtures (catalogue, analyzers, collected specimens) for the lab and browser tests.
pytest_plugins = ["lab.fixtures"]  # tests/ is on sys.path (rootdir conftest)

PASSWORD = "Khám-bệnh-2025!"
IP = "127.0.0.1"  # the test client's REMOTE_ADDR


def pytest_configure(config):
    """MD5 hashing: users are created in almost every test (see HC's CustomRunner).

    Static files come from the plain storage: the manifest storage needs
    `collectstatic`, which the tests do not run.
    """
    from django.conf import settings

    # whitenoise looks for collected files, which the tests never need.
    config.addinivalue_line("filterwarnings", "ignore:No directory at:UserWarning")
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    from django.contrib.auth.hashers import get_hashers, get_hashers_by_algorithm

    get_hashers.cache_clear()
    get_hashers_by_algorithm.cache_clear()


# --- Facility and departments ------------------------------------------------------


@pytest.fixture
def facility(db) -> Facility:
    return Facility.objects.create(
        code="79001", name="Trung tâm Y tế huyện Củ Chi", province_code="79"
    )


@pytest.fixture
def khoa_noi(facility) -> Department:
    return Department.objects.create(facility=facility, code="NOI", name="Khoa Nội", has_beds=True)


@pytest.fixture
def khoa_ngoai(facility) -> Department:
    return Department.objects.create(
        facility=facility, code="NGOAI", name="Khoa Ngoại", has_beds=True
    )


@pytest.fixture
def khoa_kham(facility) -> Department:
    return Department.objects.create(facility=facility, code="KB", name="Khoa Khám bệnh")


@pytest.fixture
def khoa_xn(facility) -> Department:
    return Department.objects.create(
        facility=facility,
        code="XN",
        name="Khoa Xét nghiệm",
        kind=Department.Kind.PARACLINICAL,
    )


@pytest.fixture
def other_facility(db) -> Facility:
    return Facility.objects.create(code="01002", name="Bệnh viện huyện Sóc Sơn", province_code="01")


@pytest.fixture
def other_khoa_noi(other_facility) -> Department:
    return Department.objects.create(
        facility=other_facility, code="NOI", name="Khoa Nội", has_beds=True
    )


# --- Staff ---------------------------------------------------------------------------


@pytest.fixture
def make_user(facility) -> Callable[..., User]:
    """make_user(username, role, departments=(), facility=..., **fields)."""

    def make(username, role, departments=(), facility=facility, **fields) -> User:
        fields.setdefault("full_name", username.replace("_", " ").title())
        user = User.objects.create_user(
            username=username, password=PASSWORD, role=role, facility=facility, **fields
        )
        if departments:
            user.departments.set(departments)
        return user

    return make


@pytest.fixture
def doctor(make_user, khoa_noi) -> User:
    return make_user("doctor", Role.DOCTOR, [khoa_noi], full_name="Trần Thị Mai", title="BSCKI")


@pytest.fixture
def nurse(make_user, khoa_noi) -> User:
    return make_user("nurse", Role.NURSE, [khoa_noi], full_name="Lê Thị Hồng")


@pytest.fixture
def lab_tech(make_user, khoa_xn) -> User:
    return make_user("lab_tech", Role.LAB_TECH, [khoa_xn], full_name="Phạm Văn Tùng")


@pytest.fixture
def records_officer(make_user) -> User:
    return make_user("records_officer", Role.RECORDS_OFFICER, full_name="Võ Thị Thu")


@pytest.fixture
def receptionist(make_user, khoa_kham) -> User:
    return make_user("receptionist", Role.RECEPTIONIST, [khoa_kham], full_name="Hồ Thị Ngọc")


@pytest.fixture
def admin(make_user) -> User:
    return make_user("admin", Role.ADMIN, full_name="Quản trị viên", is_staff=True)


@pytest.fixture
def outsider_doctor(make_user, khoa_ngoai) -> User:
    return make_user("outsider_doctor", Role.DOCTOR, [khoa_ngoai], full_name="Đỗ Minh Quân")


@pytest.fixture
def other_facility_doctor(make_user, other_facility, other_khoa_noi) -> User:
    return make_user(
        "other_facility_doctor",
        Role.DOCTOR,
        [other_khoa_noi],
        facility=other_facility,
        full_name="Bùi Văn Hải",
    )


# --- Clients ---------------------------------------------------------------------------


def _confirmed_device(user: User):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    return TOTPDevice.objects.filter(user=user, confirmed=True).first() or (
        TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    )


@pytest.fixture
def client_for(db) -> Callable[..., Client]:
    """client_for(user) -> a Client signed in as user.

    Roles that must use two-factor authentication (administrators) get a confirmed
    TOTP device and a session already verified with it, as after /accounts/2fa/.
    Pass verified=False to get the session as it is right after the password step.
    """

    def make(user: User | None, verified: bool = True) -> Client:
        from django.conf import settings
        from django_otp import DEVICE_ID_SESSION_KEY

        client = Client()
        if user is None:
            return client
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        session = client.session
        session["last_seen"] = int(time.time())
        if verified and (user.role in settings.TWO_FACTOR_REQUIRED_ROLES or user.is_superuser):
            session[DEVICE_ID_SESSION_KEY] = _confirmed_device(user).persistent_id
        session.save()
        return client

    return make


# --- Patients ---------------------------------------------------------------------------


PATIENT_FIELDS = {
    "full_name": "Nguyễn Văn Ân",
    "birth_year": 1985,
    "birth_date": None,
    "sex": "M",
    "cccd": "079085001234",
    "insurance_number": "DN4790123456789",
    "phone": "0912345678",
    "address": "12 ấp Phú Lợi",
    "province_code": "79",
}


@pytest.fixture
def register_patient(receptionist) -> Callable[..., object]:
    """register_patient(**fields): through the action, as the receptionist at the desk."""
    from benhan.patients.actions import do_register_patient

    def register(actor_user: User | None = None, **fields):
        data = {**PATIENT_FIELDS, "cccd": None, "insurance_number": "", "phone": ""}
        data.update(fields)
        return do_register_patient(Actor(actor_user or receptionist, IP), data)

    return register


@pytest.fixture
def admit():
    """admit(user, patient, department, kind=..., started_at=...) via do_open_encounter."""
    from benhan.encounters.actions import do_open_encounter

    def open_(user, patient, department, kind="inpatient", started_at=None, reason=None):
        return do_open_encounter(
            Actor(user, IP),
            patient,
            kind=kind,
            department=department,
            attending=user if user.role == Role.DOCTOR else None,
            reason=reason or "Sốt cao ba ngày, ho khan",
            started_at=started_at or timezone.now() - timedelta(days=2),
        )

    return open_


@pytest.fixture
def patient(register_patient, admit, doctor, khoa_noi):
    """Nguyễn Văn Ân, admitted to Khoa Nội two days ago by `doctor`; no diagnosis yet."""
    p = register_patient(**PATIENT_FIELDS)
    admit(doctor, p, khoa_noi)
    return p


@pytest.fixture
def encounter(patient) -> Encounter:
    """The patient's open inpatient encounter in Khoa Nội."""
    return Encounter.objects.get(patient=patient)


@pytest.fixture
def icd10(db) -> Callable[[str], Icd10Code]:
    """icd10("J18.9") -> the code. Reloads the shipped list if a transactional test
    flushed the rows the migration loaded."""
    if not Icd10Code.objects.filter(code="J18.9").exists():
        from benhan.encounters.icd10 import load_shipped

        load_shipped()
    return lambda code: Icd10Code.objects.get(code=code)


@pytest.fixture
def diagnosis(encounter, doctor, icd10):
    """Main diagnosis J18.9 (pneumonia) and secondary E11.9 on the encounter."""
    from benhan.encounters.actions import do_set_diagnoses

    do_set_diagnoses(Actor(doctor, IP), encounter, main=icd10("J18.9"), secondary=[icd10("E11.9")])
    return encounter.diagnoses.get(is_main=True, retired_at__isnull=True)


@pytest.fixture
def other_patient(make_user, other_facility, other_facility_doctor, other_khoa_noi, admit):
    """A patient of the other facility, with a name that matches `patient` too."""
    from benhan.patients.actions import do_register_patient

    clerk = make_user("other_receptionist", Role.RECEPTIONIST, facility=other_facility)
    p = do_register_patient(
        Actor(clerk, IP),
        {**PATIENT_FIELDS, "full_name": "Nguyễn Văn An", "cccd": "001085009999"},
    )
    admit(other_facility_doctor, p, other_khoa_noi)
    return p


@pytest.fixture
def password() -> str:
    """Every persona's password, for tests of the real login form."""
    return PASSWORD


@pytest.fixture
def discharged(encounter, doctor, icd10):
    """The Khoa Nội admission, with its attending doctor, diagnosed and discharged."""
    from datetime import timedelta

    from django.utils import timezone

    from benhan.audit.chain import Actor
    from benhan.encounters.actions import do_discharge, do_set_diagnoses

    encounter.attending = doctor
    encounter.save(update_fields=["attending"])
    do_set_diagnoses(Actor(doctor), encounter, main=icd10("J18.9"), secondary=[icd10("E11.9")])
    do_discharge(Actor(doctor), encounter, ended_at=timezone.now() - timedelta(minutes=5),
                 outcome="1", discharge_type="1")  # fmt: skip
    encounter.refresh_from_db()
    return encounter
