"""Django settings for ris: one module, every deployable value read from the environment.

The defaults run a single-node department on an embedded SQLite database under ``RIS_DATA_DIR``;
``DATABASE_URL`` moves it to PostgreSQL.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import dj_database_url

from ris.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("RIS_DATA_DIR", str(Path.cwd() / "var"))).resolve()


def _secret_key() -> str:
    """The key from RIS_SECRET_KEY, else one generated once and kept in the data dir.

    A key that changed on every start would log every user out whenever a child restarts.
    """
    configured = env_str("RIS_SECRET_KEY", "")
    if configured:
        return configured
    key_file = DATA_DIR / "secret_key"
    try:
        return key_file.read_text().strip()
    except FileNotFoundError:
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(50)
        key_file.write_text(key)
        key_file.chmod(0o600)
        return key


SECRET_KEY = _secret_key()
DEBUG = env_bool("RIS_DEBUG", False)
ALLOWED_HOSTS = env_list("RIS_ALLOWED_HOSTS", ["*"])
CSRF_TRUSTED_ORIGINS = env_list("RIS_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "ris",
    "worklist",
    "mpps",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "ris.urls"
WSGI_APPLICATION = "ris.wsgi.application"

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
            ],
        },
    },
]


def _database() -> dict:
    url = env_str("DATABASE_URL", "")
    if url and not url.startswith("sqlite"):
        config = dj_database_url.parse(url, conn_max_age=env_int("RIS_DB_CONN_MAX_AGE", 60))
        config["TEST"] = {"NAME": env_str("RIS_TEST_DATABASE_NAME", "") or None}
        return config
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    name = dj_database_url.parse(url)["NAME"] if url else str(DATA_DIR / "ris.sqlite3")
    busy_ms = env_int("RIS_SQLITE_BUSY_TIMEOUT_MS", 30_000)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": name,
        "OPTIONS": {
            # WAL lets the worklist read while HL7 writes; synchronous=FULL makes a COMMIT that
            # preceded an ACK survive a power cut; IMMEDIATE takes the write lock at BEGIN, so a
            # transaction waits (busy timeout) instead of failing with "database is locked".
            "init_command": (
                "PRAGMA journal_mode=WAL;"
                "PRAGMA synchronous=FULL;"
                f"PRAGMA busy_timeout={busy_ms};"
                "PRAGMA foreign_keys=ON;"
            ),
            "transaction_mode": "IMMEDIATE",
            "timeout": busy_ms / 1000,
        },
        # A file, not :memory:, so tests with threads and subprocesses see the same database.
        "TEST": {"NAME": str(DATA_DIR / "test-ris.sqlite3")},
    }


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = env_str("RIS_LANGUAGE", "en")
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# The department's clock: DICOM dates and times on the worklist are rendered in this zone.
TIME_ZONE = env_str("RIS_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {"TITLE": "ris API", "VERSION": "1"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("RIS_LOG_LEVEL", "INFO")},
    "loggers": {
        # pynetdicom logs every PDU at INFO; a busy worklist would drown the log.
        "pynetdicom": {"level": "WARNING"},
        "apscheduler": {"level": "WARNING"},
    },
}

# --- ris: listeners -------------------------------------------------------------------------
RIS_HTTP = env_str("RIS_HTTP", "127.0.0.1:8000")
RIS_HTTP_WORKERS = env_int("RIS_HTTP_WORKERS", 2)
RIS_DICOM_HOST = env_str("RIS_DICOM_HOST", "0.0.0.0")
RIS_DICOM_PORT = env_int("RIS_DICOM_PORT", 11112)
RIS_AE_TITLE = env_str("RIS_AE_TITLE", "RIS")
RIS_DICOM_MAX_ASSOCIATIONS = env_int("RIS_DICOM_MAX_ASSOCIATIONS", 50)
RIS_DICOM_REQUIRE_KNOWN_AE = env_bool("RIS_DICOM_REQUIRE_KNOWN_AE", False)
RIS_MLLP_HOST = env_str("RIS_MLLP_HOST", "0.0.0.0")
RIS_MLLP_PORT = env_int("RIS_MLLP_PORT", 2575)
RIS_SCHEDULER_HEARTBEAT_SECONDS = env_int("RIS_SCHEDULER_HEARTBEAT_SECONDS", 10)

# --- ris: identifiers -------------------------------------------------------------------------
# UIDs are generated under this root. Empty: every UID is a UUID-derived 2.25.<uuid> (PS3.5 B.2),
# unique without registration. A registered root gives shorter, recognisable UIDs.
RIS_UID_ROOT = env_str("RIS_UID_ROOT", "")
RIS_ACCESSION_PREFIX = env_str("RIS_ACCESSION_PREFIX", "A")
RIS_ISSUER_OF_PATIENT_ID = env_str("RIS_ISSUER_OF_PATIENT_ID", "RIS")
RIS_INSTITUTION_NAME = env_str("RIS_INSTITUTION_NAME", "")
#: Modules that add DICOM services to the AE (see ris.dicom_server).
RIS_DICOM_SERVICES = env_list("RIS_DICOM_SERVICES", [])
RIS_MLLP_MAX_MESSAGE_BYTES = env_int("RIS_MLLP_MAX_MESSAGE_BYTES", 1024 * 1024)
RIS_MLLP_IDLE_TIMEOUT_SECONDS = env_int("RIS_MLLP_IDLE_TIMEOUT_SECONDS", 300)
RIS_MLLP_TLS_CERT = env_str("RIS_MLLP_TLS_CERT", "")
RIS_MLLP_TLS_KEY = env_str("RIS_MLLP_TLS_KEY", "")
#: Extra periodic jobs: ("id", "module:function", seconds) triples (see ris.scheduler).
RIS_SCHEDULER_JOBS: list[tuple[str, str, int]] = []
