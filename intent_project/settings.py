"""One settings module, driven by environment variables (see README "Configuration")."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from intent_project import logs
from intent_project.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_int_map,
    env_list,
    env_origins,
    env_pair,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# Prometheus multiprocess mode (intent_project/metrics.py): every process of this host writes
# its figures here and /metrics adds them up. Set before prometheus_client is imported
# (nothing imports it before the settings); web and worker processes of a host must share it.
PROMETHEUS_MULTIPROC_DIR = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR",
    str(
        Path(tempfile.gettempdir())
        / f"intent-metrics-{hashlib.sha256(str(BASE_DIR).encode()).hexdigest()[:12]}"
    ),
)
os.makedirs(PROMETHEUS_MULTIPROC_DIR, exist_ok=True)
# `GET /metrics` answers only to `Authorization: Bearer <METRICS_TOKEN>`; empty: 404.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")

DEBUG = env_bool("DEBUG", False)
# A key everyone can read in the source signs sessions, password-reset links and CSRF
# tokens predictably, so outside DEBUG there is no fallback: the process refuses to start.
# `make run` / `make test` (devenv/) generate one per checkout under .var/.
SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it to a long random value (e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`), or set DEBUG=1 "
            "for local development."
        )
    SECRET_KEY = "insecure-debug-only-key"
# Rotation: the new key in SECRET_KEY, the old ones here until sessions signed with them expire.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])

# --- HTTPS (README "Running in production"): all off by default, since `make run` serves
# plain HTTP on localhost; a deployment behind TLS turns them on from the environment.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Paths (regexes, no leading slash) answered over plain HTTP too, e.g. `^health/$` for a
# load balancer's probe.
SECURE_REDIRECT_EXEMPT = env_list("SECURE_REDIRECT_EXEMPT", [])
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
# Behind a TLS-terminating proxy: `HTTP_X_FORWARDED_PROTO,https`. Only set it when the
# proxy always overwrites that header, or any client could claim to be on HTTPS.
SECURE_PROXY_SSL_HEADER = env_pair("SECURE_PROXY_SSL_HEADER", None)
CSRF_TRUSTED_ORIGINS = env_origins("CSRF_TRUSTED_ORIGINS", [])

# --- Tenancy -----------------------------------------------------------------------------
# auth/contenttypes/admin stay shared: with auth in TENANT_APPS public users and tokens are
# invisible inside tenants, and per-schema contenttypes drift apart (ENVIRONMENT-NOTES.md).
SHARED_APPS = [
    "django_tenants",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # Before staticfiles: the first app with a `runserver` command wins, and this one closes
    # each request thread's database connection (intent_project/devserver).
    "intent_project.devserver",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "knox",  # API tokens: stored hashed, expiring, revocable (see "Auth, API" below)
    "axes",  # login lockout; its attempt log lives in the public schema
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's and Redoc's files, served by WhiteNoise
    # After auth and knox: its admin module replaces their User, Group and AuthToken admins.
    "intent_project.tenants",
]
TENANT_APPS = [
    "commands_app",
    "events_app",
    "projections_app",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
TENANT_SUBFOLDER_PREFIX = "t"
PUBLIC_SCHEMA_NAME = "public"
DATABASE_ROUTERS = ["intent_project.db.replicas.ReplicaRouter", "django_tenants.routers.TenantSyncRouter"]
# Issue `SET search_path` once per schema switch instead of before every query (a round
# trip each); django-tenants re-issues it after set_tenant() and after any rollback.
TENANT_LIMIT_SET_CALLS = True
# Tenant schemas are named "t_<slug>"; slugs are validated before any lookup.
TENANT_SCHEMA_PREFIX = "t_"
# New tenants are copied (structure and migration history) from a template schema that is
# kept fully migrated (tenants.services.ensure_template), by DDL read from it once per
# process (tenants/template.py), instead of running every migration from scratch.
# TENANT_CLONE_FROM_TEMPLATE=0 migrates each new schema instead.
TENANT_TEMPLATE_SCHEMA = "intent_tenant_template"
TENANT_CLONE_FROM_TEMPLATE = env_bool("TENANT_CLONE_FROM_TEMPLATE", True)

MIDDLEWARE = [
    "intent_project.middleware.api_responses_are_not_stored",
    "intent_project.middleware.RequestIdMiddleware",
    "intent_project.logs.LogContextMiddleware",
    "intent_project.tenants.middleware.TenantPathMiddleware",
    # After the tenant's urlconf is chosen, before CommonMiddleware's APPEND_SLASH redirect.
    "intent_project.middleware.ApiWritesWithoutSlashMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # the admin's CSS/JS under any WSGI server
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns a login refused by the lockout into its answer (axes_lockout_response).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "intent_project.urls_tenant"
PUBLIC_SCHEMA_URLCONF = "intent_project.urls_public"
WSGI_APPLICATION = "intent_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "intent_project" / "templates"],
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

# --- Database ----------------------------------------------------------------------------
# The app's own role, never a superuser (README, "Running in production").
DATABASE_URL = env_str("DATABASE_URL", "postgres://intent@127.0.0.1:5432/intent")
_db = dj_database_url.parse(
    DATABASE_URL,
    conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0),
    conn_health_checks=True,  # reconnect by itself after a PostgreSQL restart
)
_db["ENGINE"] = "intent_project.db"  # django-tenants' backend, fewer round trips (db/base.py)
if env_str("DATABASE_NAME", ""):
    _db["NAME"] = env_str("DATABASE_NAME", "")  # overrides the URL's database (child processes)
_db.setdefault("OPTIONS", {})
_db["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME", "test_" + str(_db["NAME"]))}
DATABASES = {"default": _db}
# Streaming replicas of that database (comma-separated URLs, same database name): the read
# side's reads (read models, events, traces, projection status) go to one that is up and
# caught up enough; everything else uses the primary (intent_project/db/replicas.py).
DATABASE_REPLICA_URLS = env_list("DATABASE_REPLICA_URLS", [])
for _n, _url in enumerate(DATABASE_REPLICA_URLS, start=1):
    _replica = dj_database_url.parse(
        _url,
        conn_max_age=_db["CONN_MAX_AGE"],
        conn_health_checks=True,
    )
    _replica["ENGINE"] = _db["ENGINE"]
    _replica["OPTIONS"] = dict(_db["OPTIONS"])
    _replica["TEST"] = {"MIRROR": "default"}
    if env_str("DATABASE_NAME", ""):
        _replica["NAME"] = _db["NAME"]
    _replica["OPTIONS"].setdefault("connect_timeout", 2)
    DATABASES[f"replica_{_n}"] = _replica
# A replica further behind the primary than this is skipped until it catches up; its
# state is checked at most every DATABASE_REPLICA_CHECK_SECONDS per process.
DATABASE_REPLICA_MAX_LAG_SECONDS = env_float("DATABASE_REPLICA_MAX_LAG_SECONDS", 5.0, minimum=0.0)
DATABASE_REPLICA_CHECK_SECONDS = env_float("DATABASE_REPLICA_CHECK_SECONDS", 1.0, minimum=0.05)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis / Celery ------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# The database row is the truth and the message only a wake-up call, so a message may be
# delivered twice but must never be lost: acknowledge after the task ran, re-deliver when
# the worker dies mid-task, and do not let one worker hoard messages.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes every database connection before and after each task unless
# this is set: a reconnect per task cost a quarter of a worker's time. Connections are
# instead kept like a web server keeps them (see intent_project/celery.py: Django's
# close_old_connections around each task drops broken or CONN_MAX_AGE-old ones).
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000, minimum=0)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 300, minimum=10),
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Remote control stays on: kombu 5.7's exit when the Redis connection drops ("'NoneType'
# object has no attribute 'hostname'") is fixed in intent_project/celery.py, and turning
# remote control off was seen to leave workers hung after the broker returned.
CELERY_WORKER_ENABLE_REMOTE_CONTROL = env_bool("CELERY_REMOTE_CONTROL", True)
# Task events on, so Flower or `celery -A intent_project events` shows workers and tasks.
CELERY_WORKER_SEND_TASK_EVENTS = env_bool("CELERY_TASK_EVENTS", True)
CELERY_TASK_SEND_SENT_EVENT = CELERY_WORKER_SEND_TASK_EVENTS
# Workers renew a heartbeat key this often; `/ready/` counts those renewed within the TTL.
WORKER_HEARTBEAT_SECONDS = env_float("WORKER_HEARTBEAT_SECONDS", 10.0, minimum=0.5)
WORKER_HEARTBEAT_TTL_SECONDS = env_int("WORKER_HEARTBEAT_TTL_SECONDS", 30, minimum=1)
CELERY_TASK_DEFAULT_QUEUE = "commands"
# Declared, so that a worker started without -Q (`celery -A intent_project worker`, the
# standard command) consumes all three; routes alone would leave it on the default queue
# and projections would never run. `-Q commands` etc. still split them into pools.
# Each its own exchange and key: a bare Queue("x") would be bound to the default exchange
# under the default key, so a message sent there would be copied into all three.
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name), routing_key=name) for name in ("commands", "projections", "sweeps")
]
CELERY_TASK_ROUTES = {
    "commands_app.tasks.*": {"queue": "commands"},
    "projections_app.tasks.*": {"queue": "projections"},
    "intent_project.tasks.*": {"queue": "sweeps"},
}
CELERY_TASK_ALWAYS_EAGER = False
# A worker consuming the projections queue too (the default: no -Q) runs a tenant's
# projections in the task that committed its commands, instead of sending a message for
# another task (intent_project/wakeups.py). false: always by message.
PROJECTIONS_INLINE = env_bool("PROJECTIONS_INLINE", True)
SWEEP_INTERVAL_SECONDS = env_float("SWEEP_INTERVAL_SECONDS", 5.0, minimum=0.5)
# A pass visits only the tenants marked as having work (intent_project/sweep_marks.py);
# one pass in this many seconds visits every tenant, the safety net under the marks.
SWEEP_FULL_PASS_SECONDS = env_float("SWEEP_FULL_PASS_SECONDS", 300.0, minimum=1.0)
CELERY_BEAT_SCHEDULE = {
    "sweep-all-tenants": {
        "task": "intent_project.tasks.sweep_all_tenants",
        "schedule": SWEEP_INTERVAL_SECONDS,
        "options": {"expires": SWEEP_INTERVAL_SECONDS * 2},
    },
}

# --- Command processing policy --------------------------------------------------------------
# Optimistic-concurrency conflicts reload and re-decide at most this many times per delivery.
COMMAND_CONFLICT_RETRIES = env_int("COMMAND_CONFLICT_RETRIES", 10, minimum=1)
# A worker handles up to this many due commands of one tenant per transaction (one
# append lock, one commit, one projection wake-up for the lot).
COMMAND_BATCH_SIZE = env_int("COMMAND_BATCH_SIZE", 50, minimum=1)
# Most events one projection transaction applies. Big batches matter for read models with
# few, often-updated rows (each row a batch touches is loaded and written once per batch):
# 10,000 doubles catch-up against 2,000 (docs/benchmarks.md). Live runs see small batches.
PROJECTION_BATCH_SIZE = env_int("PROJECTION_BATCH_SIZE", 10_000, minimum=1)

# --- Retries and scheduling (the policy: intent_project/retries.py) -------------------------
# Retryable domain errors, lost version races and infrastructure errors of a command:
# exponential backoff from the base, then the command fails visibly.
COMMAND_MAX_RETRIES = env_int("COMMAND_MAX_RETRIES", 5, minimum=0)
COMMAND_RETRY_BACKOFF_SECONDS = env_float("COMMAND_RETRY_BACKOFF_SECONDS", 1.0, minimum=0.0)
# A projection handler failing on one event: backoff from the base, and after this many
# failures in a row the projection stalls at that event until an operator acts.
PROJECTION_MAX_FAILURES = env_int("PROJECTION_MAX_FAILURES", 5, minimum=1)
PROJECTION_RETRY_BACKOFF_SECONDS = env_float("PROJECTION_RETRY_BACKOFF_SECONDS", 1.0, minimum=0.0)
# Commands due within this many seconds get a delayed broker message; later ones are sent by
# the sweep once due. Below the visibility timeout: Redis re-delivers a message held longer.
DELAYED_MESSAGE_MAX_SECONDS = env_float("DELAYED_MESSAGE_MAX_SECONDS", 60.0, minimum=0.0)
if CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] <= DELAYED_MESSAGE_MAX_SECONDS:
    raise ImproperlyConfigured(
        f"DELAYED_MESSAGE_MAX_SECONDS={DELAYED_MESSAGE_MAX_SECONDS:g} must be below"
        f" CELERY_VISIBILITY_TIMEOUT={CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout']}:"
        " a delayed message held that long would be delivered twice"
    )
# A command still pending this long after it was stored is re-enqueued by the sweep.
COMMAND_STALE_AFTER_SECONDS = env_float("COMMAND_STALE_AFTER_SECONDS", 10.0, minimum=0.0)
COMMAND_WAIT_MAX_SECONDS = 30
# Waiting requests (?wait=, ?min_position=&wait=) one user may have in progress at once,
# across all web processes (intent_project/waits.py); beyond it: 429 too_many_waits.
# 20 is below a web process's thread pool (WEB_THREADS, 32), so even when all of one
# user's waits wake at once (a projection they all wait on moves) they cannot take every
# thread of a process; a person or a script needs a handful.
WAITS_PER_USER = env_int("WAITS_PER_USER", 20, minimum=1)
# Live streams (Server-Sent Events, intent_project/streams.py) one user may hold open at once,
# across all web processes; beyond it: 429 too_many_streams. A stream holds no thread.
STREAMS_PER_USER = env_int("STREAMS_PER_USER", 10, minimum=1)
# A `: keep-alive` comment on a quiet stream this often (proxies close silent connections).
STREAM_HEARTBEAT_SECONDS = env_int("STREAM_HEARTBEAT_SECONDS", 15, minimum=1)
# A stream's request runs again this often (authentication, membership, read scope): a member
# removed or a token revoked stops receiving within this many seconds.
STREAM_RECHECK_SECONDS = env_int("STREAM_RECHECK_SECONDS", 30, minimum=1)
# Threads per web process running ordinary requests (the front door's pool, or gunicorn's
# gthread threads under plain WSGI): each keeps its own persistent database connection.
WEB_THREADS = env_int("WEB_THREADS", 32, minimum=1)
COMMAND_PAYLOAD_MAX_BYTES = env_int("COMMAND_PAYLOAD_MAX_BYTES", 64 * 1024, minimum=1024)
# Django rejects larger request bodies before any view code runs.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("REQUEST_MAX_BYTES", 256 * 1024, minimum=4096)

# Slices loaded into the registry, in order.
INTENT_SLICES = env_list("INTENT_SLICES", ["commands_app.slices.system", "commands_app.slices.banking"])

# --- Auth, API -----------------------------------------------------------------------------
# Django's four default validators: not like the username/email, at least 8 characters,
# not one of the 20,000 common passwords, not all digits.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env_int("PASSWORD_MIN_LENGTH", 8, minimum=8)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The lockout backend first: a locked-out username is refused before its password is hashed.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# API tokens (django-rest-knox): only a SHA-512 digest is stored, the token itself is shown
# once, in the answer to POST /api/auth/token/. A token lives TOKEN_TTL_HOURS (default 10:
# a working day; a client logs in again rather than holding a key that never dies).
TOKEN_TTL_HOURS = env_float("TOKEN_TTL_HOURS", 10.0, minimum=0.01)
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=TOKEN_TTL_HOURS),
    "AUTH_HEADER_PREFIX": "Token",  # the header clients already send: `Authorization: Token <key>`
    "AUTO_REFRESH": False,  # a token's expiry never moves: no write per request
}

# Throttling, in DRF's rate syntax ("20/min", "5/s", "1000/hour"; empty: off). The counters
# live in the shared cache (Redis), so every web process counts against the same limits.
THROTTLE_RATES = {
    "login_username": env_str("THROTTLE_LOGIN_PER_USERNAME", "10/min"),
    "login_ip": env_str("THROTTLE_LOGIN_PER_IP", "30/min"),
    "commands_user": env_str("THROTTLE_COMMANDS_PER_USER", "6000/min"),
    "commands_tenant": env_str("THROTTLE_COMMANDS_PER_TENANT", "60000/min"),
}
# How many reverse proxies in front of the app append to X-Forwarded-For. 0: the client's
# address is REMOTE_ADDR and the header is ignored (a client could write any address there).
TRUSTED_PROXIES = env_int("TRUSTED_PROXIES", 0, minimum=0)
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env_str("CACHE_URL", "") or REDIS_URL,
        "KEY_PREFIX": "intent",
        # A Redis outage must cost a request half a second at most, never hang it: the
        # throttles then let requests through (api/throttling.py) and commands are stored
        # as always.
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}

# Login lockout (django-axes) for the admin logins and POST /api/auth/token/: after
# LOGIN_FAILURE_LIMIT failures even the right password is refused for LOGIN_COOLOFF_MINUTES.
# LOGIN_LOCKOUT_BY lists what is counted, each item one counter ("username", "ip_address",
# or a combination such as "username+ip_address"). By username (the default) protects an
# account against guessing from many addresses, at the price that anyone can lock an
# account for the cool-off: what a bank usually chooses.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_float("LOGIN_COOLOFF_MINUTES", 30.0, minimum=0.1))
AXES_LOCKOUT_PARAMETERS = [
    item.split("+") if "+" in item else item for item in env_list("LOGIN_LOCKOUT_BY", ["username"])
]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "intent_project.api.throttling.client_ip"
AXES_LOCKOUT_CALLABLE = "intent_project.api.throttling.lockout_response"
AXES_VERBOSE = False
# axes.W006 asks for an ip_address counter so rotating User-Agents cannot dodge a lockout;
# the username counter does not depend on them, and addresses are limited by the
# per-address login throttle (THROTTLE_LOGIN_PER_IP) without locking out a whole office
# behind one NAT address. LOGIN_LOCKOUT_BY=username,ip_address adds the counter.
SILENCED_SYSTEM_CHECKS = ["axes.W006"]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "intent_project.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["intent_project.api.parsers.StrictJSONParser"],
    "EXCEPTION_HANDLER": "intent_project.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "intent_project.api.schema.ApiSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "NUM_PROXIES": TRUSTED_PROXIES,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Intent for Django",
    "DESCRIPTION": "Event-sourced CQRS platform: commands in, events stored, read models out, per tenant.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/(t/\{tenant\}/)?api/",
    # Swagger UI from our own static files, not a CDN: no third-party script runs beside the
    # API's session cookie, and the docs work without internet access.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # One name per choice set: fields named alike (`status`, `kind`) hold different sets.
    "ENUM_NAME_OVERRIDES": {
        "ErrorCode": "intent_project.api.schema.ERROR_CODE_CHOICES",
        "CommandStatusEnum": "commands_app.models.CommandStatus",
        "ProjectionStatusEnum": "projections_app.models.ProjectionStatus",
        "ConsumerKindEnum": "projections_app.api.CONSUMER_KINDS",
        "AccountStatusEnum": "projections_app.models.AccountBalance.Status",
        "TransferStatusEnum": "projections_app.models.TransferStatus.Status",
        "StatementLineKindEnum": "projections_app.models.StatementLine.Kind",
    },
    # 3.1 admits JSON Schema's "null" type, which pydantic uses for optional fields.
    "OAS_VERSION": "3.1.0",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "intent_project.api.openapi.add_command_payload_schemas",
        "intent_project.api.openapi.add_tags",
    ],
    # Relative: the host that serves the document (`make run`: http://127.0.0.1:8000).
    "SERVERS": [{"url": "/", "description": "The host serving this document."}],
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "/static/"
# Static files (the admin's) are served by WhiteNoise straight from the apps' static dirs,
# so no collectstatic is needed. To serve collected files instead, set STATIC_ROOT and run
# `manage.py collectstatic`.
STATIC_ROOT = env_str("STATIC_ROOT", "") or None
WHITENOISE_USE_FINDERS = True
STATICFILES_DIRS = [BASE_DIR / "intent_project" / "static"]  # the admin's additions (intent/)
LOGIN_URL = "/admin/login/"

# JSON lines for a log shipper, or readable colored lines for a terminal (intent_project/logs.py):
# by default, console on a terminal or under DEBUG (`make run`), JSON everywhere else.
_ON_A_TERMINAL = sys.stderr.isatty()
LOG_FORMAT = env_choice("LOG_FORMAT", "console" if DEBUG or _ON_A_TERMINAL else "json", logs.FORMATS)
LOGGING = logs.logging_config(
    LOG_FORMAT, env_str("LOG_LEVEL", "INFO").upper(), colors=env_bool("LOG_COLORS", _ON_A_TERMINAL)
)
logs.configure_structlog()
CSRF_FAILURE_VIEW = "intent_project.api.errors.csrf_failure"

# Web processes keep the /t/<slug>/ -> tenant lookup this long (0: off). Only that: roles
# and tokens are read from the database on every request, so a removed membership or a
# revoked token is refused by every process at once.
TENANT_CACHE_SECONDS = env_float("TENANT_CACHE_SECONDS", 5.0, minimum=0.0)

# A snapshot every N events per aggregate (0 disables snapshots). Per aggregate type, the
# aggregate class's SNAPSHOT_EVERY overrides the default and SNAPSHOT_EVERY_BY_TYPE
# (e.g. "system=50,account=200") overrides both.
SNAPSHOT_EVERY = env_int("SNAPSHOT_EVERY", 100, minimum=0)
SNAPSHOT_EVERY_BY_TYPE = env_int_map("SNAPSHOT_EVERY_BY_TYPE", {}, minimum=0)

# Publishing a wake-up message must not hold an API request hostage when the broker is
# down: try briefly, then leave the command to the sweep (the row is already committed).
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("CELERY_BROKER_CONNECTION_TIMEOUT", 2.0, minimum=0.1)
CELERY_REDIS_SOCKET_TIMEOUT = 5.0
# Projector modules (each exports PROJECTIONS and READ_MODELS), one per slice.
INTENT_PROJECTORS = env_list(
    "INTENT_PROJECTORS", ["projections_app.projectors.system", "projections_app.projectors.banking"]
)
