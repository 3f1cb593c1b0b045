"""Bệnh Án settings: one module, configured by BENHAN_* environment variables.

Every variable has a default that runs a single clinic on SQLite out of the box.
The full list, with meanings, is in docs/configuration.md.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    """BENHAN_<name>, or the contents of the file named by BENHAN_<name>_FILE."""
    key = f"BENHAN_{name}"
    file_path = os.environ.get(f"{key}_FILE")
    if file_path:
        return Path(file_path).read_text(encoding="utf-8").strip()
    return os.environ.get(key, default)


def envbool(name: str, default: bool) -> bool:
    value = env(name, "1" if default else "0").strip().lower()
    return value in {"1", "true", "yes", "on"}


def envint(name: str, default: int) -> int:
    return int(env(name, str(default)))


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


DATA_DIR = Path(env("DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """The configured key, or one generated on first run and kept in the data directory."""
    configured = env("SECRET_KEY")
    if configured:
        return configured
    path = DATA_DIR / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        key = secrets.token_urlsafe(50)
        f.write(key)
    return key


SECRET_KEY = _secret_key()
DEBUG = envbool("DEBUG", False)
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "benhan.accounts",
    "benhan.audit",
    "benhan.patients",
    "benhan.encounters",
    "benhan.signing",
    "benhan.records",
    "benhan.lab",
    "benhan.core",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "benhan.core.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.gzip.GZipMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "benhan.core.middleware.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "benhan.core.middleware.RejectNulMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "benhan.accounts.middleware.IdleTimeoutMiddleware",
    "benhan.accounts.middleware.TwoFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so it sees the final authentication state.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "benhan.urls"
WSGI_APPLICATION = "benhan.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "benhan.core.context_processors.clinic",
                "benhan.lab.context.lab",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------

DB_ENGINE = env("DB", "sqlite")
if DB_ENGINE == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": env("DB_NAME", "benhan"),
            "USER": env("DB_USER", "postgres"),
            "PASSWORD": env("DB_PASSWORD", ""),
            "HOST": env("DB_HOST", "127.0.0.1"),
            "PORT": env("DB_PORT", "5432"),
            "CONN_MAX_AGE": envint("DB_CONN_MAX_AGE", 60),
            "CONN_HEALTH_CHECKS": True,
            "TEST": {"NAME": env("DB_TEST_NAME", "") or None},
        }
    }
elif DB_ENGINE == "sqlite":
    SQLITE_SYNCHRONOUS = env("SQLITE_SYNCHRONOUS", "FULL").upper()
    if SQLITE_SYNCHRONOUS not in {"FULL", "NORMAL"}:
        raise RuntimeError(f"BENHAN_SQLITE_SYNCHRONOUS must be FULL or NORMAL, not "
                           f"{SQLITE_SYNCHRONOUS!r}")  # fmt: skip
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env("DB_NAME", str(DATA_DIR / "benhan.sqlite3")),
            "OPTIONS": {
                # IMMEDIATE: a transaction takes the write lock when it starts, so two
                # writers queue on the busy timeout instead of failing with "database is
                # locked" when a read transaction tries to upgrade.
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                # synchronous=FULL: a commit is on disk (the WAL fsynced) before it
                # returns, so what was acknowledged (an analyzer's message, a signature,
                # a saved form) survives a power cut, as on PostgreSQL. NORMAL keeps it
                # through a crash of the program only (docs/decisions.md #31).
                "init_command": (
                    "PRAGMA journal_mode=WAL;"
                    f"PRAGMA synchronous={SQLITE_SYNCHRONOUS};"
                    "PRAGMA foreign_keys=ON;"
                    "PRAGMA cache_size=-32000;"
                ),
            },
            # Tests use a file, not Django's shared in-memory database: with several
            # threads (the analyzer listeners, the live server) an in-memory shared
            # cache locks whole tables and fails instead of waiting; a file in WAL mode
            # behaves as production does. One per process (pytest-xdist workers).
            "TEST": {
                "NAME": env("DB_TEST_NAME", "")
                or str(Path(tempfile.gettempdir()) / f"benhan-test-{os.getpid()}.sqlite3")
            },
        }
    }
else:
    raise RuntimeError(f"BENHAN_DB must be 'sqlite' or 'postgres', not {DB_ENGINE!r}")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Authentication and security ------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "core:home"
LOGOUT_REDIRECT_URL = "accounts:login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Lockout after repeated failures, per username and address (django-axes).
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=envint("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_VERBOSE = False
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]

# Idle sessions end after this many minutes without a request.
IDLE_TIMEOUT_MINUTES = envint("IDLE_TIMEOUT_MINUTES", 30)
SESSION_COOKIE_AGE = 12 * 3600  # a shift; the idle timeout ends a session sooner
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

OTP_TOTP_ISSUER = env("OTP_ISSUER", "Bệnh Án")
# Administrators must use TOTP; other staff may opt in.
TWO_FACTOR_REQUIRED_ROLES = envlist("TWO_FACTOR_REQUIRED_ROLES", "admin")

HTTPS = envbool("HTTPS", False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS and envbool("SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = envint("HSTS_SECONDS", 31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = False
if envbool("BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Break-the-glass access lasts this long after the reason is given.
BREAK_GLASS_HOURS = envint("BREAK_GLASS_HOURS", 8)

# --- Signing (benhan/signing; see docs/verification.md) ---
# The address staff and the public reach this server at. Certificates name
# {PUBLIC_URL}/pki/crl/<ca>.crl as their CRL distribution point.
PUBLIC_URL = env("PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
# Encrypts the certificate authorities', the seal's and the timestamp service's private
# keys at rest (and peppers the staff PIN keys). Without it, derived from SECRET_KEY.
# Set your own and keep it in an offline backup: losing it loses the facility's keys.
CA_PASSPHRASE = env("CA_PASSPHRASE", "")
# An external RFC 3161 timestamp service; empty = the facility's built-in one.
TSA_URL = env("TSA_URL", "")
# "ecdsa-p256" (default) or "rsa-3072", for keys created from now on.
SIGNING_KEY_TYPE = env("SIGNING_KEY_TYPE", "ecdsa-p256")
# scrypt cost (log2 N) of the key derived from a signing PIN (~8 ms at 12). A 6-digit
# PIN is protected by the pepper and the lockout, not by this cost (docs/decisions.md #19).
SIGNING_PIN_KDF_COST = envint("SIGNING_PIN_KDF_COST", 12)
# Wrong PINs in a row before a signing key is locked.
SIGNING_PIN_ATTEMPTS = envint("SIGNING_PIN_ATTEMPTS", 5)
# Years a staff certificate is valid.
SIGNING_STAFF_CERT_YEARS = envint("SIGNING_STAFF_CERT_YEARS", 3)
# USB tokens and HSMs (docs/signers.md).
PKCS11_MODULE = env("PKCS11_MODULE", "")
PKCS11_TOKEN_LABEL = env("PKCS11_TOKEN_LABEL", "")
PKCS11_KEY_LABEL = env("PKCS11_KEY_LABEL", "")
PKCS11_CERT_LABEL = env("PKCS11_CERT_LABEL", "") or None
# A remote signing service speaking the Cloud Signature Consortium API (docs/signers.md).
CSC_URL = env("CSC_URL", "")
CSC_API_VERSION = env("CSC_API_VERSION", "v1")
CSC_TOKEN = env("CSC_TOKEN", "")
CSC_TIMEOUT = envint("CSC_TIMEOUT", 30)
# PEM file of further root certificates to trust when verifying (the CAs behind the
# tokens or remote signing services staff use).
TRUSTED_ROOTS_FILE = env("TRUSTED_ROOTS_FILE", "")
# --- end of signing settings ---

# --- Records ----------------------------------------------------------------------------

# Rendered and signed PDFs, content-addressed (benhan/records/storage.py).
DOCUMENTS_DIR = Path(env("DOCUMENTS_DIR", str(DATA_DIR / "documents")))
# Years records are kept, counted from the year the episode ended; 0 = permanently.
# e.g. BENHAN_RETENTION_YEARS="ordinary=10,special=20,death=30,incident=0"
RETENTION_YEARS = {
    k.strip(): int(v) for k, v in (item.split("=") for item in envlist("RETENTION_YEARS", ""))
}
# The authority printed above the facility's name on forms (e.g. "SỞ Y TẾ THANH HÓA").
FACILITY_PARENT = env("FACILITY_PARENT", "")
# The QR code on a printed form that opens the upload page for its signed paper.
PAPER_QR_DAYS = envint("PAPER_QR_DAYS", 90)
# The link (and QR code) a patient scans to download their signed copy without an account.
PATIENT_COPY_HOURS = envint("PATIENT_COPY_HOURS", 24)
# Original phone photos of filed paper are kept this long after filing, then removed by
# `benhan records purge-originals` once the converted PDF checks out; 0 keeps them.
SCAN_ORIGINALS_DAYS = envint("SCAN_ORIGINALS_DAYS", 30)

# --- Language and time ------------------------------------------------------------

LANGUAGE_CODE = "vi"
LANGUAGES = [("vi", "Tiếng Việt"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
# Stored in UTC; shown in the clinic's time zone.
TIME_ZONE = env("TIME_ZONE", "Asia/Ho_Chi_Minh")
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_COOKIE_SAMESITE = "Lax"

# --- Static files ---------------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage",
    },
}
WHITENOISE_MAX_AGE = 365 * 24 * 3600

# --- Serving ----------------------------------------------------------------------------

SERVE_HOST = env("HOST", "127.0.0.1")
SERVE_PORT = envint("PORT", 8000)
SERVE_WORKERS = envint("WORKERS", 2)
SERVE_THREADS = envint("THREADS", 4)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"axes": {"level": "WARNING"}},
}
