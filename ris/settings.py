"""Django settings for ris: one module, every deployable value read from the environment.

The defaults run a single-node department on an embedded SQLite database under ``RIS_DATA_DIR``;
``DATABASE_URL`` moves it to PostgreSQL.
"""

from __future__ import annotations

import datetime as _dt
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
    "drf_spectacular_sidecar",
    "axes",
    "ris",
    "worklist",
    "mpps",
    "mpps.forwarding",
    "django_htmx",
    "web",
    "dicomweb",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # the language stored on the user's account wins over the department default (ris.accounts)
    "ris.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # last: answers a locked-out login attempt (django-axes)
    "axes.middleware.AxesMiddleware",
]

# --- password guessing (django-axes; ris/security.py) ----------------------------------------
# Failures are counted in the database (AxesDatabaseHandler), so one limit holds across every
# gunicorn worker and every ris process sharing the database: the web login, the admin and the
# API token endpoint alike.
AUTHENTICATION_BACKENDS = [
    "ris.security.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
#: Failed logins per (username, client address) before that pair is locked out.
AXES_FAILURE_LIMIT = env_int("RIS_LOGIN_FAILURE_LIMIT", 10)
#: Minutes a lockout lasts; 0: until an administrator resets it (``ris axes_reset_username``).
_LOCKOUT_MINUTES = env_int("RIS_LOGIN_LOCKOUT_MINUTES", 15)
AXES_COOLOFF_TIME = _dt.timedelta(minutes=_LOCKOUT_MINUTES) if _LOCKOUT_MINUTES else None
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "ris.security.lockout_response"
AXES_VERBOSE = False  # ris.security logs one line per failure and lockout

#: "shared": a cache in the database, for limits that must hold across processes (the API token
#: endpoint's throttle); "default" stays per process. ``ris serve`` creates its table.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "shared": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "ris_cache"},
}

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
            # Reads through a memory map (no read() per page), an 8 MiB page cache per connection
            # and in-memory sort space: ~5% less CPU per HL7 order (docs/BENCHMARKS.md); none of
            # them touches durability, which is the WAL's and synchronous=FULL's.
            "init_command": (
                "PRAGMA journal_mode=WAL;"
                "PRAGMA synchronous=FULL;"
                f"PRAGMA busy_timeout={busy_ms};"
                "PRAGMA foreign_keys=ON;"
                "PRAGMA cache_size=-8192;"
                "PRAGMA mmap_size=268435456;"
                "PRAGMA temp_store=MEMORY;"
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
    "DEFAULT_SCHEMA_CLASS": "api.schema.RisAutoSchema",
    "EXCEPTION_HANDLER": "api.exceptions.exception_handler",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ris API",
    "VERSION": "1",
    "DESCRIPTION": "Patients, orders, scheduled steps and the department's configuration, over "
    "the same services as HL7, DICOM and the web UI. Authenticate with a session or with "
    "`Authorization: Token <token>` (POST /api/v1/auth/token/).",
    # Separate request and response components, so read-only fields are not asked for.
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_INCLUDE_SCHEMA": False,
    # No anonymous access anywhere, the schema and its docs pages included.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SERVE_AUTHENTICATION": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Swagger UI and Redoc from the installed drf-spectacular-sidecar package: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "StepStatusEnum": "worklist.models.StepStatus",
        "OrderStatusEnum": "worklist.models.OrderStatus",
        "CheckInStatusEnum": ["ARRIVED", "READY"],
        "PerformedStepStatusEnum": "mpps.models.PPSStatus",
        "HL7MessageStatusEnum": "ris.models.InboundMessage.Status",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {
        "peer_input": {"()": "ris.log_filters.PeerInputWithoutTraceback"},
        "printable": {"()": "ris.log_filters.ControlCharactersEscaped"},
        "job_still_running": {"()": "ris.log_filters.JobStillRunning"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain",
                    "filters": ["printable"]},
    },
    "root": {"handlers": ["console"], "level": env_str("RIS_LOG_LEVEL", "INFO")},
    "loggers": {
        # pynetdicom logs every PDU at INFO; a busy worklist would drown the log.
        "pynetdicom": {"level": "WARNING"},
        # one line, not a traceback, per undecodable AE title or PDU from a peer
        "pynetdicom.utils": {"level": "WARNING", "filters": ["peer_input"]},
        "pynetdicom.dul": {"level": "WARNING", "filters": ["peer_input"]},
        "apscheduler": {"level": "WARNING"},
        # a job due while its last run still works is skipped by design (max_instances=1)
        "apscheduler.scheduler": {"level": "WARNING", "filters": ["job_still_running"]},
        # django-axes logs each failure itself; ris.security writes one line (and the audit row)
        "axes": {"level": "ERROR"},
    },
}

# --- ris: listeners -------------------------------------------------------------------------
RIS_HTTP = env_str("RIS_HTTP", "127.0.0.1:8000")
RIS_HTTP_WORKERS = env_int("RIS_HTTP_WORKERS", 2)
#: The UPS-RS event channel (WebSocket, PS3.18 11.x): its own listener (``ris events``), since
#: the web listener's WSGI workers hold no long-lived connection. RIS_UPS_EVENTS_URL is the
#: address clients are told (behind a proxy: ``wss://ris.example/ws``); empty: ws://<host>:<port>.
RIS_UPS_EVENTS_HTTP = env_str("RIS_UPS_EVENTS_HTTP", "127.0.0.1:8001")
RIS_UPS_EVENTS_URL = env_str("RIS_UPS_EVENTS_URL", "")
#: How often the event channel reads new changes from the audit trail.
RIS_UPS_EVENTS_POLL_MS = env_int("RIS_UPS_EVENTS_POLL_MS", 500)
RIS_DICOM_HOST = env_str("RIS_DICOM_HOST", "0.0.0.0")
RIS_DICOM_PORT = env_int("RIS_DICOM_PORT", 11112)
RIS_AE_TITLE = env_str("RIS_AE_TITLE", "RIS")
RIS_DICOM_MAX_ASSOCIATIONS = env_int("RIS_DICOM_MAX_ASSOCIATIONS", 50)
#: DICOM listener processes sharing the port (SO_REUSEPORT: the kernel spreads connections).
#: pynetdicom runs a thread per association under one interpreter lock, so one process uses
#: one core however many modalities query at once; more processes use more cores. The limits
#: (associations, connections per address) and the worklist response cache are per process.
RIS_DICOM_PROCESSES = env_int("RIS_DICOM_PROCESSES", 1)
RIS_DICOM_REQUIRE_KNOWN_AE = env_bool("RIS_DICOM_REQUIRE_KNOWN_AE", False)
#: DICOM TLS (PS3.15 B.9, BCP 195) on a second port; off unless a certificate is given.
#: With a CA, clients must present a certificate it signed.
RIS_DICOM_TLS_PORT = env_int("RIS_DICOM_TLS_PORT", 2762)
RIS_DICOM_TLS_CERT = env_str("RIS_DICOM_TLS_CERT", "")
RIS_DICOM_TLS_KEY = env_str("RIS_DICOM_TLS_KEY", "")
RIS_DICOM_TLS_CA = env_str("RIS_DICOM_TLS_CA", "")
#: Refuse associations whose Called AE Title is not RIS_AE_TITLE (A-ASSOCIATE-RJ, reason 7).
RIS_DICOM_REQUIRE_CALLED_AE = env_bool("RIS_DICOM_REQUIRE_CALLED_AE", False)
#: Largest PDU accepted (and announced as Maximum Length Received, PS3.8 D.1); a PDU header
#: announcing more is answered with A-ABORT at once.
RIS_DICOM_MAX_PDU_BYTES = env_int("RIS_DICOM_MAX_PDU_BYTES", 1024 * 1024)
#: A connection must have sent its whole A-ASSOCIATE-RQ within this; until then it holds no
#: association slot.
RIS_DICOM_FIRST_PDU_TIMEOUT_SECONDS = env_int("RIS_DICOM_FIRST_PDU_TIMEOUT_SECONDS", 5)
#: Open DICOM connections (associated or not) one source address may hold; 0: no limit.
RIS_DICOM_MAX_CONNECTIONS_PER_ADDRESS = env_int("RIS_DICOM_MAX_CONNECTIONS_PER_ADDRESS", 32)
RIS_MLLP_HOST = env_str("RIS_MLLP_HOST", "0.0.0.0")
RIS_MLLP_PORT = env_int("RIS_MLLP_PORT", 2575)
#: MLLP listener processes sharing the port (SO_REUSEPORT), as RIS_DICOM_PROCESSES: a connection
#: stays in one process, so each sender's messages keep their order. For PostgreSQL, where the
#: processes' transactions run side by side; on SQLite they would queue for its one writer.
RIS_MLLP_PROCESSES = env_int("RIS_MLLP_PROCESSES", 1)
#: Bearer token that shows /healthz's details (addresses, errors); anonymous: status only.
RIS_HEALTH_TOKEN = env_str("RIS_HEALTH_TOKEN", "")
RIS_SCHEDULER_HEARTBEAT_SECONDS = env_int("RIS_SCHEDULER_HEARTBEAT_SECONDS", 10)
#: How often the scheduler leader checks that it still holds its lock (ris.scheduler).
RIS_SCHEDULER_LOCK_CHECK_SECONDS = env_int("RIS_SCHEDULER_LOCK_CHECK_SECONDS", 2)

# --- ris: identifiers -------------------------------------------------------------------------
# UIDs are generated under this root. Empty: every UID is a UUID-derived 2.25.<uuid> (PS3.5 B.2),
# unique without registration. A registered root gives shorter, recognisable UIDs.
RIS_UID_ROOT = env_str("RIS_UID_ROOT", "")
RIS_ACCESSION_PREFIX = env_str("RIS_ACCESSION_PREFIX", "A")
RIS_ISSUER_OF_PATIENT_ID = env_str("RIS_ISSUER_OF_PATIENT_ID", "RIS")
#: Patient IDs ris generates when the front desk leaves the field empty (worklist.identifiers).
RIS_PATIENT_ID_PATTERN = env_str("RIS_PATIENT_ID_PATTERN", "P{counter:08d}")
#: No-show reason codes the check-in list offers, in order (web.forms.NO_SHOW_REASONS); empty: all.
RIS_NO_SHOW_REASONS = env_list("RIS_NO_SHOW_REASONS", [])
#: Cancel reason codes the order's cancel page offers, in order (web.forms.CANCEL_REASONS);
#: empty: all.
RIS_CANCEL_REASONS = env_list("RIS_CANCEL_REASONS", [])
#: Next-free-slot search (worklist.scheduling): how many days ahead it looks, and the least time
#: between two exams with contrast medium of one patient.
RIS_FREE_SLOT_HORIZON_DAYS = env_int("RIS_FREE_SLOT_HORIZON_DAYS", 28)
RIS_CONTRAST_GAP_MINUTES = env_int("RIS_CONTRAST_GAP_MINUTES", 240)
#: An HL7 new order (NW) without a start time is booked into the first free slot.
RIS_HL7_AUTO_BOOK = env_bool("RIS_HL7_AUTO_BOOK", False)
RIS_INSTITUTION_NAME = env_str("RIS_INSTITUTION_NAME", "")
#: Capitalisation of the Pinyin ris derives for a Hanzi-only name (worklist.pn): "syllable"
#: (Wang^XiaoDong), "title" (Wang^Xiaodong), "upper" (WANG^XIAODONG) or "off" (no derivation).
RIS_PINYIN_STYLE = env_str("RIS_PINYIN_STYLE", "syllable")
#: Modules that add DICOM services to the AE (see ris.dicom_server).
RIS_DICOM_SERVICES = env_list(
    "RIS_DICOM_SERVICES", ["worklist.mwl.scp", "mpps.scp", "mpps.forwarding.scp"]
)
# --- ris: Modality Worklist SCP (worklist.mwl.scp; docs/conformance.md) ----------------------
#: A query with more matches than this is refused with 0xA700 (narrow it: station, date).
RIS_MWL_MAX_MATCHES = env_int("RIS_MWL_MAX_MATCHES", 5000)
#: PN keys (Patient's Name...) match case-insensitively: PS3.4 allows it, modalities expect it.
RIS_MWL_PN_CASE_INSENSITIVE = env_bool("RIS_MWL_PN_CASE_INSENSITIVE", True)
#: Step statuses on the worklist when the query does not ask for a status itself.
#: Started, completed and discontinued steps stay on the worklist this long after their last
#: change (0: they leave at once).
RIS_MWL_KEEP_FINISHED_MINUTES = env_int("RIS_MWL_KEEP_FINISHED_MINUTES", 0)
#: Worklist housekeeping (worklist.housekeeping): a waiting step is overdue this many hours after
#: its scheduled end (dashboard; 0: off); after RIS_STEP_OVERDUE_ACTION_HOURS it is left (""),
#: taken off the worklist ("REMOVE") or moved to a status ("CANCELED"), never deleted.
RIS_STEP_OVERDUE_HOURS = env_int("RIS_STEP_OVERDUE_HOURS", 2)
RIS_STEP_OVERDUE_ACTION = env_str("RIS_STEP_OVERDUE_ACTION", "").upper()
RIS_STEP_OVERDUE_ACTION_HOURS = env_int("RIS_STEP_OVERDUE_ACTION_HOURS", 24)
RIS_MWL_DEFAULT_STATUSES = env_list("RIS_MWL_DEFAULT_STATUSES", ["SCHEDULED", "ARRIVED", "READY"])
#: Specific Character Set of answers to AEs that are not a Device (a Device has its own).
RIS_MWL_DEFAULT_CHARACTER_SET = env_str("RIS_MWL_DEFAULT_CHARACTER_SET", "ISO_IR 192")
#: Encode C-FIND responses straight to bytes (same bytes as pydicom, 5-8x faster on broad queries).
RIS_MWL_FAST_ENCODING = env_bool("RIS_MWL_FAST_ENCODING", True)
#: Encoded worklist response items the DICOM listener keeps between queries (about 1 KB each;
#: keyed on the step's row as read, so a change anywhere is seen by the next query:
#: worklist/mwl/response_cache.py); 0: every response is encoded again. Needs FAST_ENCODING.
RIS_MWL_RESPONSE_CACHE_ITEMS = env_int("RIS_MWL_RESPONSE_CACHE_ITEMS", 50000)
#: On PostgreSQL the worklist's SELECT is a prepared statement (planned once per shape and kept
#: connection); off behind a connection pooler in transaction mode, which cannot keep them.
RIS_MWL_PREPARED_STATEMENTS = env_bool("RIS_MWL_PREPARED_STATEMENTS", True)
#: Write Pending C-FIND responses to the socket in batches instead of one by one through
#: pynetdicom (worklist/mwl/dimse_stream.py); needs RIS_MWL_FAST_ENCODING; never used on TLS.
RIS_MWL_DIRECT_SEND = env_bool("RIS_MWL_DIRECT_SEND", True)
#: Threads that run the worklist's database reads on connections kept across associations
#: (worklist/mwl/dbthreads.py); 0 reads in each association's own thread, with its own connection.
RIS_DICOM_DB_THREADS = env_int("RIS_DICOM_DB_THREADS", 4)
RIS_MLLP_MAX_MESSAGE_BYTES = env_int("RIS_MLLP_MAX_MESSAGE_BYTES", 1024 * 1024)
RIS_MLLP_IDLE_TIMEOUT_SECONDS = env_int("RIS_MLLP_IDLE_TIMEOUT_SECONDS", 300)
#: Open MLLP connections one source address may hold; 0: no limit.
RIS_MLLP_MAX_CONNECTIONS_PER_ADDRESS = env_int("RIS_MLLP_MAX_CONNECTIONS_PER_ADDRESS", 16)
RIS_MLLP_TLS_CERT = env_str("RIS_MLLP_TLS_CERT", "")
RIS_MLLP_TLS_KEY = env_str("RIS_MLLP_TLS_KEY", "")
#: With a CA, MLLP TLS requires client certificates signed by it (HL7Sender.certificate_subject
#: maps them to senders).
RIS_MLLP_TLS_CA = env_str("RIS_MLLP_TLS_CA", "")
#: Extra periodic jobs: ("id", "module:function", seconds) triples (see ris.scheduler).
RIS_SCHEDULER_JOBS: list[tuple[str, str, int]] = [
    ("outbound", "ris.outbound_queue:drain_due", env_int("RIS_OUTBOUND_POLL_SECONDS", 2)),
    # PACS forwarding (mpps.forwarding): study availability C-FIND, spool and commitment upkeep.
    ("pacs_availability", "mpps.forwarding.availability:check_studies",
     env_int("RIS_PACS_AVAILABILITY_SECONDS", 60)),
    ("forwarding_upkeep", "mpps.forwarding.upkeep:run", env_int("RIS_FORWARD_UPKEEP_SECONDS", 30)),
    # Studies at the PACS that match no order (the exceptions list).
    ("pacs_orphans", "mpps.forwarding.availability:check_orphan_studies",
     env_int("RIS_PACS_ORPHAN_SECONDS", 600)),
    # Overdue steps: RIS_STEP_OVERDUE_ACTION (worklist.housekeeping).
    ("worklist_housekeeping", "worklist.housekeeping:run",
     env_int("RIS_HOUSEKEEPING_SECONDS", 300)),
    # Steps that follow the images: a stable study completes its step.
    ("study_stable", "mpps.forwarding.progress:complete_stable_studies",
     env_int("RIS_STUDY_STABLE_CHECK_SECONDS", 30)),
]

# --- ris: HL7 interface (ris.hl7) and the outbound queue (ris.outbound_queue) ---------------
#: MSH-18 assumed when a message leaves it empty and its sender has no default (HL7Sender).
RIS_HL7_DEFAULT_CHARSET = env_str("RIS_HL7_DEFAULT_CHARSET", "ASCII")
#: Where an order's start time is read, first found wins: TQ1-7 (v2.5), ORC-7.4, OBR-27.4, OBR-36.
RIS_HL7_START_TIME_FIELDS = env_list("RIS_HL7_START_TIME_FIELDS", ["TQ1-7", "ORC-7", "OBR-27"])
#: The trusted patient identifier domains (PID-3 CX.4 assigning authorities), the department's
#: primary first. The patient ID is the PID-3 repetition of the first domain in this list that
#: the message carries (else the first whose CX.5 is in RIS_HL7_PATIENT_ID_TYPES, else the
#: first repetition); the others become Other Patient IDs. A patient is found by the ID of any
#: trusted domain (as Patient ID or Other Patient ID), so feeds that know only their own domain
#: reach the same patient; empty: one domain, the Patient ID alone identifies.
RIS_HL7_PATIENT_ID_AUTHORITIES = env_list("RIS_HL7_PATIENT_ID_AUTHORITIES", [])
RIS_HL7_PATIENT_ID_TYPES = env_list("RIS_HL7_PATIENT_ID_TYPES", ["PI", "MR"])
#: Issuer of Patient ID stored when PID-3's CX.4 is empty.
RIS_HL7_DEFAULT_ISSUER = env_str("RIS_HL7_DEFAULT_ISSUER", "")
#: Senders of outbound jobs by kind: {"kind": "module:function"} (see ris.outbound_queue).
RIS_OUTBOUND_SENDERS = {
    "hl7.order_status": "ris.hl7.notifications:send_order_status",
    "hl7.patient": "ris.hl7.notifications:send_order_status",  # the same delivery, ADT built
}
# The PACS forwarder's job kinds (mpps.forwarding.sender).
RIS_OUTBOUND_SENDERS.update(
    {
        "dicom.mpps": "mpps.forwarding.sender:send_mpps",
        "dicom.store": "mpps.forwarding.sender:send_study",
        "dicom.commit": "mpps.forwarding.sender:send_commitment",
    }
)
# IHE ATNA (ris.atna): audit messages to the audit record repository, e.g. "tls://arr:6514"
# (RFC 5425) or "udp://arr:514" (RFC 5426); empty: off.
RIS_ATNA_REPOSITORY = env_str("RIS_ATNA_REPOSITORY", "")
RIS_ATNA_TLS_CA = env_str("RIS_ATNA_TLS_CA", "")
RIS_ATNA_TLS_CERT = env_str("RIS_ATNA_TLS_CERT", "")
RIS_ATNA_TLS_KEY = env_str("RIS_ATNA_TLS_KEY", "")
#: AuditSourceID (default "<RIS_AE_TITLE>@<host name>") and AuditEnterpriseSiteID.
RIS_ATNA_SOURCE_ID = env_str("RIS_ATNA_SOURCE_ID", "")
RIS_ATNA_ENTERPRISE_SITE_ID = env_str("RIS_ATNA_ENTERPRISE_SITE_ID", "")
#: Attempts per message (with the queue's backoff, capped at RIS_OUTBOUND_BACKOFF_MAX_MS: a
#: repository may be down for days before a message fails and is shown to an operator).
RIS_ATNA_MAX_ATTEMPTS = env_int("RIS_ATNA_MAX_ATTEMPTS", 1000)
RIS_OUTBOUND_SENDERS["atna.audit"] = "ris.atna:send"
RIS_OUTBOUND_BACKOFF_MS = env_int("RIS_OUTBOUND_BACKOFF_MS", 5_000)
RIS_OUTBOUND_BACKOFF_MAX_MS = env_int("RIS_OUTBOUND_BACKOFF_MAX_MS", 600_000)
RIS_OUTBOUND_MAX_ATTEMPTS = env_int("RIS_OUTBOUND_MAX_ATTEMPTS", 20)
#: A job claimed longer ago than this is taken back (its worker died mid-delivery).
RIS_OUTBOUND_LEASE_SECONDS = env_int("RIS_OUTBOUND_LEASE_SECONDS", 300)
#: A destination failing this long (or with a FAILED job, at once) is shown to admins as a banner
#: and logged at ERROR once (ris.outbound_queue.check_alerts).
RIS_OUTBOUND_ALERT_AFTER_SECONDS = env_int("RIS_OUTBOUND_ALERT_AFTER_SECONDS", 600)

# --- ris: PACS forwarding (mpps.forwarding; docs/conformance.md) ------------------------------
#: Where the storage gateway keeps received instances until the PACS committed them.
RIS_FORWARD_SPOOL_DIR = Path(env_str("RIS_FORWARD_SPOOL_DIR", str(DATA_DIR / "spool"))).resolve()
#: Hours a committed (or stored, without commitment) instance stays in the spool; 0: delete at once.
RIS_FORWARD_SPOOL_RETENTION_HOURS = env_int("RIS_FORWARD_SPOOL_RETENTION_HOURS", 0)
#: Unmatched instances stay in the spool at least this long after delivery, so that staff can
#: still link their study to its order (corrected from the spool file and forwarded again).
RIS_FORWARD_UNMATCHED_RETENTION_HOURS = env_int("RIS_FORWARD_UNMATCHED_RETENTION_HOURS", 72)
#: A storage commitment without a report after this long is asked again.
RIS_FORWARD_COMMIT_TIMEOUT_SECONDS = env_int("RIS_FORWARD_COMMIT_TIMEOUT_SECONDS", 900)
#: Instances sent per association (and per storage commitment request).
RIS_FORWARD_BATCH_SIZE = env_int("RIS_FORWARD_BATCH_SIZE", 500)
#: Steps started or completed within this many days, and steps still waiting that were
#: scheduled today or this many days back, are looked for at the PACS.
RIS_PACS_AVAILABILITY_DAYS = env_int("RIS_PACS_AVAILABILITY_DAYS", 7)
#: What moves a step of a device that has no choice of its own: MPPS, IMAGES or BOTH
#: (worklist.models.StepProgress; per device in the admin).
RIS_STEP_PROGRESS_DEFAULT = env_str("RIS_STEP_PROGRESS_DEFAULT", "MPPS").upper()
#: A study with no new instance (at the gateway or at the PACS) for this long is stable: its
#: step, when images move it, becomes COMPLETED (mpps.forwarding.progress).
RIS_STUDY_STABLE_SECONDS = env_int("RIS_STUDY_STABLE_SECONDS", 600)
#: A step COMPLETED by MPPS with no image received or found at a PACS this many hours later is
#: listed on the exceptions screen.
RIS_EXCEPTION_NO_IMAGES_HOURS = env_int("RIS_EXCEPTION_NO_IMAGES_HOURS", 4)
#: DICOM TLS towards destinations with TLS on: CA bundle, and our client certificate and key.
RIS_PACS_TLS_CA = env_str("RIS_PACS_TLS_CA", "")
RIS_PACS_TLS_CERT = env_str("RIS_PACS_TLS_CERT", "")
RIS_PACS_TLS_KEY = env_str("RIS_PACS_TLS_KEY", "")
