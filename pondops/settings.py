"""PondOps settings: every value is read here, once, from the environment, with embedded
defaults that run the whole system on one machine (SQLite file, django-q2's ORM broker, the
database cache). Production sets DATABASE_URL (PostgreSQL), REDIS_URL and the SQS variables.
Code reads these through ``django.conf.settings``; nothing else reads ``os.environ``.
"""

from __future__ import annotations

import os
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from pondops import environment
from pondops.encryption_keys import fernet_keys_parse
from pondops.environment import PondOpsEnv
from pondops.logcontext import log_format_default, logging_config
from pondops.sentry import sentry_configure

BASE_DIR = Path(__file__).resolve().parent.parent
# The package's own directory: its templates ship in the wheel, so they are found wherever the
# package is installed (BASE_DIR is the source tree's root only in a checkout).
PACKAGE_DIR = Path(__file__).resolve().parent
# Every variable is read through ``env`` (pondops/environment.py): a bad value stops the start
# naming the variable, an empty one means unset, and ``<NAME>_FILE`` reads it from a file.
env = PondOpsEnv()

# The default SQLite file, the SQLite test databases, the demo's logs and STATIC_ROOT live here.
# Importing the settings creates nothing: the SQLite backend (pondops/sqlite3) creates it when
# it first opens a database in it, the demo launcher for its logs, collectstatic for STATIC_ROOT.
VAR_DIR = env.path("PONDOPS_VAR_DIR", BASE_DIR / "var")


DEBUG = env.bool("DJANGO_DEBUG", False)
_SECRET_KEY = env.str("DJANGO_SECRET_KEY", "")
SECRET_KEY = _SECRET_KEY or "pondops-insecure-local-development-key"
ALLOWED_HOSTS = env.csv("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
ENVIRONMENT_NAME = env.str("PONDOPS_ENVIRONMENT", "local")
# Carrier, webhook and callback secrets are encrypted at rest (bulkchanges/encryption.py) with
# the keys in PONDOPS_FERNET_KEYS: the first encrypts, all decrypt (docs/security/secrets.md).
# Required outside PONDOPS_ENVIRONMENT=local; a bad key stops the start, naming its position.
# django-fernetix reads them under this name.
DJANGO_FERNETIX_KEYS = fernet_keys_parse(
    env.str("PONDOPS_FERNET_KEYS", None), environment=ENVIRONMENT_NAME
)

# --- Deployed security (every PONDOPS_ENVIRONMENT but local; docs/security/guards.md) ---------
# Outside local the start refuses a missing DJANGO_SECRET_KEY (the fallback above is public)
# and DJANGO_DEBUG on, and turns on HTTPS only: HSTS, the TLS redirect (health probes exempt:
# load balancers call them over plain http) and secure cookies. `manage.py check --deploy` is
# clean with these defaults.
DEPLOYED = ENVIRONMENT_NAME != "local"
if DEPLOYED and not _SECRET_KEY:
    raise ImproperlyConfigured(
        f"DJANGO_SECRET_KEY must be set with PONDOPS_ENVIRONMENT={ENVIRONMENT_NAME!r} (the "
        "built-in key is public); use at least 50 random characters"
    )
if DEPLOYED and DEBUG:
    raise ImproperlyConfigured(
        f"DJANGO_DEBUG must be off with PONDOPS_ENVIRONMENT={ENVIRONMENT_NAME!r} (debug pages "
        "show settings and source); unset it or set DJANGO_DEBUG=false"
    )
# Origins (scheme://host[:port]) allowed to POST forms, e.g. the admin behind its public name.
CSRF_TRUSTED_ORIGINS = env.csv("DJANGO_CSRF_TRUSTED_ORIGINS", "")
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips it from clients).
PONDOPS_BEHIND_TLS_PROXY = env.bool("PONDOPS_BEHIND_TLS_PROXY", False)
if PONDOPS_BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int(
    "DJANGO_SECURE_HSTS_SECONDS",
    365 * 24 * 3600 if DEPLOYED else 0,
    validate=environment.not_negative,
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", DEPLOYED)
# Preload is opt-in: once the directive is sent, anyone may submit the domain to the browsers'
# preload list, and leaving that list takes months.
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", DEPLOYED)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^livez$", r"^readyz$"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = DEPLOYED
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS: list[str] = []
if not SECURE_HSTS_PRELOAD:
    # security.W021 only says the domain cannot be submitted to the preload list: preload is
    # the operator's decision (DJANGO_SECURE_HSTS_PRELOAD=true), not a default.
    SILENCED_SYSTEM_CHECKS.append("security.W021")

INSTALLED_APPS = [
    "bulkchanges.apps.PondOpsAdminConfig",  # django.contrib.admin with PondOps' admin site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",  # its AbstractAPIKey; our model is bulkchanges.PartnerApiKey
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc as static files: /api/docs/ works offline
    "bulkchanges",  # before django_q: its qcluster command wraps django-q2's
    "django_q",
    "bulkchanges.api",
    "axes",  # admin login lockout (below)
]

MIDDLEWARE = [
    # Before anything that reads the Host header (only RequestIdMiddleware, inserted below, may
    # come first): answers /livez, /readyz and /healthz before host validation and the TLS
    # redirect (load balancers probe by address, over http); docs/operations/health.md.
    "bulkchanges.health.HealthProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files, before anything that reads the session or the database (whitenoise's docs).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # turns a locked-out login into the lockout page
]

ROOT_URLCONF = "pondops.urls"
WSGI_APPLICATION = "pondops.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Before the apps' directories: PondOps' admin templates override django.contrib.admin's.
        "DIRS": [PACKAGE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------------
# The embedded SQLite default serves web, qcluster and poll_sqs at once: WAL, a busy timeout and
# IMMEDIATE transactions make concurrent writers wait instead of failing "database is locked".
_default_sqlite = VAR_DIR / "pondops.sqlite3"
DATABASES: dict[str, dict[str, Any]] = {
    "default": dict(
        dj_database_url.parse(
            env.str("DATABASE_URL", f"sqlite:///{_default_sqlite}"),
            # Seconds a connection is kept for the next request or django-q2 task (0: closed
            # after each), checked before reuse so that a restarted database costs one failed
            # check, not a failed task. The benchmark's workers keep theirs for 60 s.
            conn_max_age=env.int("DATABASE_CONN_MAX_AGE", 0),
            conn_health_checks=True,
        )
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["ENGINE"] = "pondops.sqlite3"  # Django's, creating VAR_DIR on connect
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not :memory:, so that subprocesses (qcluster, poll_sqs) in tests see it; one per
    # test run, so that concurrent runs on one machine do not share it.
    DATABASES["default"]["TEST"] = {
        "NAME": env.str("PONDOPS_TEST_SQLITE", str(VAR_DIR / f"test-pondops-{os.getpid()}.sqlite3"))
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and broker ------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "pondops_cache",
        }
    }

# --- Production's shared services (PONDOPS_ENVIRONMENT=production) --------------------------
# The hosts of a production deployment share their work through PostgreSQL and Redis: SQLite
# is one machine's file, and without Redis the broker, the cache (carrier tokens) and the rate
# and concurrency limiters fall back to the database, built for one machine's demo. Other
# deployed names (staging, ...) get the security settings above but may run on less.
PRODUCTION = ENVIRONMENT_NAME == "production"
if PRODUCTION and DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured(
        "DATABASE_URL must name a PostgreSQL database with PONDOPS_ENVIRONMENT='production' "
        "(postgresql://user:password@host:5432/name); every host shares it"
    )
if PRODUCTION and not REDIS_URL:
    raise ImproperlyConfigured(
        "REDIS_URL must be set with PONDOPS_ENVIRONMENT='production' (redis://host:6379/0): "
        "the task broker, the shared cache and the carrier rate limiters of every host live there"
    )

# --- Scaling out: a host cut off mid-transaction (docs/operations/scaling-out.md) ------------
# A host that loses its network inside a transaction (a claim's SELECT … FOR UPDATE) leaves
# its PostgreSQL session "idle in transaction", holding its row locks, until the server's TCP
# keepalive notices (hours by default): every other host's claims and reaper passes on those
# rows wait behind it. PostgreSQL ends such a session after this many seconds (0: never), which
# frees the locks; PondOps' transactions are short, none waits on anything but the database.
PONDOPS_DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS = env.float(
    "PONDOPS_DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS", 60, validate=environment.not_negative
)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _idle_ms = round(PONDOPS_DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS * 1000)
    _options["options"] = " ".join(  # after any libpq options the DATABASE_URL gave
        part
        for part in (
            _options.get("options", ""),
            f"-c idle_in_transaction_session_timeout={_idle_ms}",
        )
        if part
    )

# --- Processing knobs (README "Configuration") ------------------------------------------------
BULKCHANGE_MAX_RETRIES = env.int("BULKCHANGE_MAX_RETRIES", 5, validate=environment.not_negative)
BULKCHANGE_RETRY_BASE_SECONDS = env.float(
    "BULKCHANGE_RETRY_BASE_SECONDS", 30, validate=environment.not_negative
)
# The longest a retry waits, whatever the backoff or a carrier's Retry-After says.
BULKCHANGE_MAX_RETRY_DELAY_SECONDS = env.float(
    "BULKCHANGE_MAX_RETRY_DELAY_SECONDS", 3600, validate=environment.positive
)
BULKCHANGE_CHUNK_SIZE = env.int("BULKCHANGE_CHUNK_SIZE", 50, validate=environment.at_least_one)
# A preview's transient read failures are retried within its task (BULKCHANGE_MAX_RETRIES of
# them), base·2ⁿ apart with jitter, each wait at most 10 s (docs/operator-features.md).
BULKCHANGE_PREVIEW_RETRY_BASE_SECONDS = env.float(
    "BULKCHANGE_PREVIEW_RETRY_BASE_SECONDS", 1, validate=environment.not_negative
)
BULKCHANGE_TASK_TIMEOUT = env.int("BULKCHANGE_TASK_TIMEOUT", 300, validate=environment.at_least_one)
BULKCHANGE_TASK_RETRY = env.int("BULKCHANGE_TASK_RETRY", 360, validate=environment.at_least_one)
# A claimed device's lease (and a handed-off chunk's), renewed every third of it while its
# process lives (bulkchanges/leases.py): a dead worker's devices are back within about this.
# How long a django-q2 task waits out an unreachable database before it fails (well inside
# BULKCHANGE_TASK_TIMEOUT).
BULKCHANGE_DB_OUTAGE_WAIT_SECONDS = env.float(
    "BULKCHANGE_DB_OUTAGE_WAIT_SECONDS", 120, validate=environment.not_negative
)
BULKCHANGE_LEASE_SECONDS = env.float("BULKCHANGE_LEASE_SECONDS", 30, validate=environment.positive)
# A concurrency slot's lease (bulkchanges/ratelimit.py): renewed every third of it while its
# request runs, so a killed process's slots are free again within about this long.
BULKCHANGE_SLOT_LEASE_SECONDS = env.float(
    "BULKCHANGE_SLOT_LEASE_SECONDS", 10, validate=environment.positive
)
BULKCHANGE_HTTP_CONNECT_TIMEOUT = env.float(
    "BULKCHANGE_HTTP_CONNECT_TIMEOUT", 5, validate=environment.positive
)
BULKCHANGE_HTTP_READ_TIMEOUT = env.float(
    "BULKCHANGE_HTTP_READ_TIMEOUT", 30, validate=environment.positive
)
BULKCHANGE_CONFIRM_SECONDS = env.float(
    "BULKCHANGE_CONFIRM_SECONDS", 30, validate=environment.positive
)
# Asynchronous carriers (docs/carriers/README.md): a device still pending after a CONFIRM
# attempt waits 1, 2, 5, 10, then every 15 minutes (the last entry repeats), until its carrier's
# confirm deadline. The time scale multiplies the schedule and the deadlines: 1 in production;
# tests compress hours into seconds with it (the simulators take the same factor).
BULKCHANGE_WAITING_SCHEDULE_MINUTES = env.list(
    "BULKCHANGE_WAITING_SCHEDULE_MINUTES",
    [1.0, 2.0, 5.0, 10.0, 15.0],
    subcast=float,
    validate=environment.at_least_one_item,
)
BULKCHANGE_CARRIER_TIME_SCALE = env.float(
    "BULKCHANGE_CARRIER_TIME_SCALE", 1.0, validate=environment.positive
)
# The public HTTPS origin carriers reach our callback receiver on (certificate from a public
# CA). Unset: no callbacks are registered or sent; polling only.
CARRIER_CALLBACK_BASE_URL = env.str("CARRIER_CALLBACK_BASE_URL", "").rstrip("/")
# Origins exempt from the egress rules, comma-separated (scheme://host[:port], port may be *):
# a credentials row's base_url may point there although it is no carrier's known origin, and
# calls to it skip the connect-time public-address check. Production needs none; the demo and
# the tests list their loopback simulators (http://127.0.0.1:*).
PONDOPS_CARRIER_EXTRA_ORIGINS = env.csv("PONDOPS_CARRIER_EXTRA_ORIGINS", "")
BULKCHANGE_REAPER_INTERVAL_SECONDS = env.float(
    "BULKCHANGE_REAPER_INTERVAL_SECONDS", 15, validate=environment.positive
)
BULKCHANGE_REAPER_GRACE_SECONDS = env.float(
    "BULKCHANGE_REAPER_GRACE_SECONDS", 120, validate=environment.not_negative
)
BULKCHANGE_MAX_DEVICES_PER_REQUEST = env.int(
    "BULKCHANGE_MAX_DEVICES_PER_REQUEST", 100_000, validate=environment.at_least_one
)
# How far ahead a bulk change may be scheduled (docs/operator-features.md).
BULKCHANGE_MAX_SCHEDULE_DAYS = env.int(
    "BULKCHANGE_MAX_SCHEDULE_DAYS", 180, validate=environment.at_least_one
)
# Tests need these short too: the SQS long-poll wait and how soon a
# malformed message becomes visible again (so the redrive policy moves it to the DLQ).
BULKCHANGE_SQS_WAIT_SECONDS = env.int(
    "BULKCHANGE_SQS_WAIT_SECONDS", 20, validate=environment.not_negative
)
BULKCHANGE_MALFORMED_VISIBILITY_SECONDS = env.int(
    "BULKCHANGE_MALFORMED_VISIBILITY_SECONDS", 10, validate=environment.not_negative
)

# --- SQS -------------------------------------------------------------------------------------
PONDOPS_SQS_QUEUE_URL = env.str("PONDOPS_SQS_QUEUE_URL", "")
PONDOPS_SQS_DLQ_URL = env.str("PONDOPS_SQS_DLQ_URL", "")
AWS_REGION = env.str("AWS_REGION", "") or env.str("AWS_DEFAULT_REGION", "us-east-1")
AWS_ENDPOINT_URL_SQS = env.str("AWS_ENDPOINT_URL_SQS", "")
# The queue and dead-letter queue figures on the dashboard and /healthz: each SQS read gives up
# after this many seconds (so a slow or dead SQS never holds a page), and the answer — or the
# failure — is reused for PONDOPS_SQS_STATUS_CACHE_SECONDS.
PONDOPS_SQS_STATUS_TIMEOUT_SECONDS = env.float(
    "PONDOPS_SQS_STATUS_TIMEOUT_SECONDS", 0.5, validate=environment.positive
)
PONDOPS_SQS_STATUS_CACHE_SECONDS = env.int(
    "PONDOPS_SQS_STATUS_CACHE_SECONDS", 15, validate=environment.not_negative
)

# --- Health probes (bulkchanges/health.py; docs/operations/health.md) ---------------------
# How long /readyz and /healthz wait for the database's SELECT 1 (and /healthz for Redis's
# PING) before they report it down: a hung database must not hold a load balancer's probe.
PONDOPS_HEALTH_TIMEOUT_SECONDS = env.float(
    "PONDOPS_HEALTH_TIMEOUT_SECONDS", 2.0, validate=environment.positive
)
# --- end of health probes ---------------------------------------------------------------------

# --- django-q2 -------------------------------------------------------------------------------
# Our retries go through SQS and the reaper (state in our rows), so django-q2's own are capped:
# one attempt, failures acknowledged. retry > timeout, else django-q2 re-runs live tasks.
Q_CLUSTER: dict[str, Any] = {
    "name": "pondops",
    "workers": env.int("PONDOPS_Q_WORKERS", 2, validate=environment.at_least_one),
    "timeout": BULKCHANGE_TASK_TIMEOUT,
    "retry": BULKCHANGE_TASK_RETRY,
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 1000,
    "label": "Task queue",
    # The configured ORM or Redis broker, holding each chunk its cluster takes off the queue.
    "broker_class": "bulkchanges.brokers.hand_off_broker",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = env.float("PONDOPS_Q_POLL_SECONDS", 1.0, validate=environment.positive)

# --- Auth, i18n, static ----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# Admin login lockout (django-axes; docs/security/guards.md): after PONDOPS_LOGIN_FAILURE_LIMIT
# failed logins for one username from one client address, that pair is locked out for
# PONDOPS_LOGIN_LOCKOUT_MINUTES (a failure meanwhile starts the wait again); a success resets
# the count. Only logins through django.contrib.auth's authenticate() are watched: the API's
# key authentication never calls it. `manage.py axes_reset` (or axes_reset_ip_username ADDRESS
# USERNAME) lifts locks.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("PONDOPS_LOGIN_FAILURE_LIMIT", 5, validate=environment.at_least_one)
AXES_COOLOFF_TIME = timedelta(
    minutes=env.float("PONDOPS_LOGIN_LOCKOUT_MINUTES", 15, validate=environment.positive)
)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The client address as the API's throttles see it (REMOTE_ADDR unless proxies are trusted).
AXES_CLIENT_IP_CALLABLE = "bulkchanges.logins.client_address"
AXES_LOCKOUT_CALLABLE = "bulkchanges.logins.login_lockout_response"
AXES_SENSITIVE_PARAMETERS = ["csrfmiddlewaretoken"]  # with the password, never stored
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# One time format with seconds, Django's own pages included (pondops/formats/en/formats.py).
FORMAT_MODULE_PATH = ["pondops.formats"]
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# --- Deployment: static files and the web server (docs/operations/deployment.md) -------------
# Static files are served by the web process itself (whitenoise). Deployed environments serve
# what `manage.py collectstatic` (a release step) put in STATIC_ROOT: compressed, with hashed
# names cached for a year by browsers and proxies (whitenoise marks them immutable). Locally
# (`./dev up`, the tests) nothing is collected: files come straight from the apps' static
# directories under their plain names, as Django's own storage names them.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if DEPLOYED
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = not DEPLOYED
if not DEPLOYED:
    # Locally nothing is collected, so whitenoise's note that STATIC_ROOT is missing is noise
    # (on every `./dev up` start and in the tests). Deployed, it stays: collectstatic was missed.
    warnings.filterwarnings("ignore", message="No directory at: ", category=UserWarning)
# Read by pondops/gunicorn_conf.py (gunicorn -c python:pondops.gunicorn_conf pondops.wsgi).
# Where the web server listens; worker processes, and threads per worker (gthread): each
# thread serves one request at a time, so workers x threads requests run at once per host.
PONDOPS_WEB_BIND = env.csv("PONDOPS_WEB_BIND", "0.0.0.0:8000")
PONDOPS_WEB_WORKERS = env.int("PONDOPS_WEB_WORKERS", 2, validate=environment.at_least_one)
PONDOPS_WEB_THREADS = env.int("PONDOPS_WEB_THREADS", 4, validate=environment.at_least_one)
# A worker silent this long is killed and replaced; SIGTERM waits this long for requests in
# flight. Both cover the largest request: a PONDOPS_API_MAX_BODY_BYTES create of
# BULKCHANGE_MAX_DEVICES_PER_REQUEST devices, read, validated and inserted in one transaction.
PONDOPS_WEB_TIMEOUT_SECONDS = env.int(
    "PONDOPS_WEB_TIMEOUT_SECONDS", 120, validate=environment.at_least_one
)
PONDOPS_WEB_GRACEFUL_TIMEOUT_SECONDS = env.int(
    "PONDOPS_WEB_GRACEFUL_TIMEOUT_SECONDS", 120, validate=environment.at_least_one
)
# With PONDOPS_BEHIND_TLS_PROXY: the proxies' addresses or networks gunicorn takes
# X-Forwarded-Proto from (comma-separated); empty: any peer (only the proxy reaches the port).
PONDOPS_WEB_FORWARDED_ALLOW_IPS = env.csv("PONDOPS_WEB_FORWARDED_ALLOW_IPS", "")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "bulkchanges.api.auth.PartnerApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Hops of trusted reverse proxies in front of the app: 0 (the default) takes the client
    # address from REMOTE_ADDR and ignores X-Forwarded-For, which a client can write itself.
    "NUM_PROXIES": env.int("PONDOPS_TRUSTED_PROXY_HOPS", 0, validate=environment.not_negative),
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # The partner API (bulkchanges/api): versioned in the path (/api/v1/), one JSON error shape
    # {code, detail, fields}, an OpenAPI 3 schema from drf-spectacular.
    "DEFAULT_VERSIONING_CLASS": "rest_framework.versioning.URLPathVersioning",
    "DEFAULT_VERSION": "v1",
    "ALLOWED_VERSIONS": ["v1"],
    "EXCEPTION_HANDLER": "bulkchanges.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "URL_FORMAT_OVERRIDE": None,  # no ?format=: an unknown query parameter is a 400
}

# --- Partner API (bulkchanges/api) -----------------------------------------------------------
# Requests per token ("60/min"; DRF's rate syntax: n/s, n/min, n/hour, n/day) — 429 with
# Retry-After beyond it.
PONDOPS_API_THROTTLE_RATE = env.str(
    "PONDOPS_API_THROTTLE_RATE", "60/min", validate=environment.rate
)
# Failed API key authentications per client address (same syntax; empty: no limit); beyond it
# the address gets 429 with Retry-After, whatever key it sends, until its failures age out.
PONDOPS_API_AUTH_FAILURE_RATE = env.str(
    "PONDOPS_API_AUTH_FAILURE_RATE", "20/min", validate=environment.rate
)
# Largest request body accepted by the API; larger is a 413. The default fits
# BULKCHANGE_MAX_DEVICES_PER_REQUEST devices with MSISDN and EID as JSON, even pretty-printed
# (a multipart upload is capped lower: PONDOPS_MAX_UPLOAD_BYTES below).
PONDOPS_API_MAX_BODY_BYTES = env.int(
    "PONDOPS_API_MAX_BODY_BYTES", 32 * 1024 * 1024, validate=environment.positive
)
# Django's own cap on a request body held in memory (2.5 MB by default) would turn a JSON
# create of 80,000 devices into a 500; the API's limit (checked first, a 413) is the one.
# The API's JSON parser streams the body (bulkchanges/api/parsers.py), so this figure bounds
# the bytes read, not the memory used.
DATA_UPLOAD_MAX_MEMORY_SIZE = PONDOPS_API_MAX_BODY_BYTES
# Largest device-list file uploaded (API multipart, admin form): 100,000 rows of the widest
# CSV (iccid,msisdn,eid: 22 + 15 + 32 digits, CRLF) take 7.3 MB. Checked from Content-Length
# and again while the body is read (bulkchanges/uploads.py); larger is a 413 / a form error.
PONDOPS_MAX_UPLOAD_BYTES = env.int(
    "PONDOPS_MAX_UPLOAD_BYTES", 8 * 1024 * 1024, validate=environment.positive
)
FILE_UPLOAD_HANDLERS = [
    "bulkchanges.uploads.BoundedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
PONDOPS_API_PAGE_SIZE = env.int("PONDOPS_API_PAGE_SIZE", 50, validate=environment.at_least_one)
# Completion webhooks: attempts in all (the first included), spaced by bulkchanges.retry's
# backoff on BULKCHANGE_RETRY_BASE_SECONDS; a sending attempt's lease. (The sweep runs in
# every run_reaper pass.)
PONDOPS_WEBHOOK_MAX_ATTEMPTS = env.int(
    "PONDOPS_WEBHOOK_MAX_ATTEMPTS", 8, validate=environment.at_least_one
)
PONDOPS_WEBHOOK_TIMEOUT_SECONDS = env.float(
    "PONDOPS_WEBHOOK_TIMEOUT_SECONDS", 10, validate=environment.positive
)
# Completion webhooks go to https URLs on public addresses only (checked at save and on the
# address connected to); origins listed here (same syntax as PONDOPS_CARRIER_EXTRA_ORIGINS)
# are exempt — plain http and loopback receivers, for the tests. Production needs none.
PONDOPS_WEBHOOK_EXTRA_ORIGINS = env.csv("PONDOPS_WEBHOOK_EXTRA_ORIGINS", "")

SPECTACULAR_SETTINGS = {
    "TITLE": "PondOps partner API",
    "DESCRIPTION": (
        "Bulk SIM status changes for partners. Authenticate with `Authorization: Api-Key "
        "<key>`; every request is scoped to the key's tenant, and the key's role (read, "
        "submit, approve) decides what it may do. Errors are JSON "
        '`{"code", "detail", "fields"}`.'
    ),
    "VERSION": "1.0.0",
    # Swagger UI and ReDoc from drf-spectacular-sidecar's static files, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Swagger UI would send the schema's URL to validator.swagger.io for its badge.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "bulkchanges.api.schema.postprocess",
    ],
    "ENUM_NAME_OVERRIDES": {
        "BulkChangeStatusEnum": "bulkchanges.models.BulkChange.Status",
        "DeviceChangeStatusEnum": "bulkchanges.models.DeviceChange.Status",
        "IntegrationEnum": "integrations.base.Integration",
        "CarrierEnum": "bulkchanges.api.serializers.CARRIER_CHOICES",
    },
}

# --- Observability (docs/operations/observability.md) ----------------------------------------
# Logs: one line a record on stderr, JSON (python-json-logger) or plain; either way every line
# carries the ids of the work in hand (bulk change, device change, request id, carrier) from the
# log context (pondops/logcontext.py). Default: plain in local, JSON everywhere else.
LOG_LEVEL = env.str("PONDOPS_LOG_LEVEL", "INFO", validate=environment.log_level)
PONDOPS_LOG_FORMAT = env.str(
    "PONDOPS_LOG_FORMAT",
    log_format_default(environment_name=ENVIRONMENT_NAME),
    validate=environment.log_format,
)
LOGGING = logging_config(
    log_format=PONDOPS_LOG_FORMAT,
    level=LOG_LEVEL,
    q_level=env.str("PONDOPS_Q_LOG_LEVEL", "WARNING", validate=environment.log_level),
)
# The request id of each web request (X-Request-ID in, or made up; X-Request-ID out) on every
# line the request logs: first, so every later middleware's lines carry it.
MIDDLEWARE.insert(0, "pondops.middleware.RequestIdMiddleware")
# Prometheus at /metrics. PROMETHEUS_MULTIPROC_DIR (read by prometheus-client itself, from the
# environment, when each process starts) is the directory every process of a host shares in
# multiprocess mode; unset, /metrics shows the serving process's own counters only.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", "")
# Set: /metrics wants "Authorization: Bearer <token>". Unset: open (keep it off the proxy).
PONDOPS_METRICS_TOKEN = env.str("PONDOPS_METRICS_TOKEN", "")
SECURE_REDIRECT_EXEMPT.append(r"^metrics$")  # scraped over plain http inside the network
# Sentry when SENTRY_DSN is set (redacted, no bodies, no local variables); unset: not loaded.
SENTRY_DSN = env.str("SENTRY_DSN", "")
PONDOPS_RELEASE = env.str("PONDOPS_RELEASE", "")  # default: pondops@<package version>
sentry_configure(dsn=SENTRY_DSN, environment=ENVIRONMENT_NAME, release=PONDOPS_RELEASE)
