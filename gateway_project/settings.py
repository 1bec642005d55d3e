"""Settings, all from the environment (12-factor). See README.md's configuration table."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

from .env import env, envbool, envfloat, envint, envlist, envsecret

BASE_DIR = Path(__file__).resolve().parent.parent
# A .env file fills in what the real environment does not set.
load_dotenv(env("GATEWAY_ENV_FILE", str(BASE_DIR / ".env")), override=False)

VAR_DIR = Path(env("GATEWAY_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = envbool("DJANGO_DEBUG", False)
GATEWAY_DEMO = env("GATEWAY_DEMO", "") or ""
# Set by `manage.py serve` when it really started the emulator (see api/demo.py).
GATEWAY_DEMO_ACTIVE = envbool("GATEWAY_DEMO_ACTIVE", False)
TESTING = envbool("GATEWAY_TESTING", False)
# Set in the container image: secrets must come from the environment, never be generated.
PRODUCTION = envbool("GATEWAY_PRODUCTION", False)

_INSECURE_KEYS = {"", "changeme", "secret", "django-insecure"}


def _secret_key() -> str:
    key = envsecret("DJANGO_SECRET_KEY")
    if key:
        if not DEBUG and (key.lower() in _INSECURE_KEYS or key.startswith("django-insecure") or len(key) < 32):
            raise ImproperlyConfigured(
                "DJANGO_SECRET_KEY is a default or too short (< 32 characters); set a long random value"
            )
        return key
    if PRODUCTION:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set; set it (or DJANGO_SECRET_KEY_FILE) to a long random value"
        )
    # Development only: a random key kept under var/ so sessions survive restarts.
    path = VAR_DIR / "dev-secret-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
if not DEBUG and "*" in ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must not contain '*' when DJANGO_DEBUG is off; list the host names")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")
TRUSTED_PROXIES = envlist("TRUSTED_PROXIES")
if TRUSTED_PROXIES:
    # Django itself only needs this for request.is_secure() behind a TLS-terminating proxy.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "models_registry",
    "usage",
    "api",
    "audit",
]

# The full stack serves the admin and dashboards. The /v1 path runs through a handler with no
# middleware at all (gateway_project/asgi.py), because every built-in middleware costs a thread hop.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's and API docs' static files (collected at start-up) without a web server.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "gateway_project.urls"
API_URLCONF = "api.urls"
API_ROUTE_PREFIX = "/" + (env("API_ROUTE_PREFIX", "/v1") or "").strip("/")
# How /v1 is served: "asgi" (a raw ASGI adapter, no Django request cycle) or "django" (async views).
API_SERVING = env("API_SERVING", "asgi")
if API_SERVING not in ("asgi", "django"):
    raise ImproperlyConfigured(f"API_SERVING must be asgi or django, got {API_SERVING!r}")

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
                "api.context_processors.demo",
            ],
        },
    },
]

WSGI_APPLICATION = None
ASGI_APPLICATION = "gateway_project.asgi.application"


def _databases() -> dict:
    url = env("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'gateway.sqlite3'}"
    try:
        db = dj_database_url.parse(url)
    except Exception as exc:  # dj-database-url raises several types for a malformed URL
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
    if db["ENGINE"] == "django.db.backends.sqlite3":
        # WAL + busy timeout: management commands can write while the gateway serves.
        db["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
        # A file, not memory, so gateway processes started by tests share the test database; one per
        # test run, so concurrent runs on one machine do not collide.
        db["TEST"] = {"NAME": str(VAR_DIR / f"test-gateway-{os.getpid()}.sqlite3")}
    elif db["ENGINE"] == "django.db.backends.postgresql":
        db["TEST"] = {"NAME": f"test_{db['NAME']}_{os.getpid()}"}  # concurrent test runs do not collide
        # A bounded pool per process; persistent connections are wrong under ASGI.
        db["CONN_MAX_AGE"] = 0
        db.setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": envint("DATABASE_POOL_SIZE", 8),
            "timeout": 10,
        }
    return {"default": db}


DATABASES = _databases()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", "") or ""
# Prefix of every Redis key and channel this gateway uses, so several installations (or test runs)
# can share one Redis.
REDIS_KEY_PREFIX = env("REDIS_KEY_PREFIX", "gateway:") or "gateway:"
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# Django's cache holds little (the /me/ sign-in throttle); shared through Redis when there is one.
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "KEY_PREFIX": REDIS_KEY_PREFIX + "cache"}}
ME_SIGNIN_MAX_FAILURES = envint("ME_SIGNIN_MAX_FAILURES", 10)
ME_SIGNIN_WINDOW_SECONDS = envint("ME_SIGNIN_WINDOW_SECONDS", 600)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Chat bodies carry long histories and base64 images; each endpoint also checks its own cap.
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("MAX_REQUEST_BYTES", 20 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
# The management API's OpenAPI schema (/manage/api/schema/); docs use vendored assets, no CDN.
SPECTACULAR_SETTINGS = {
    "TITLE": "OCI GenAI gateway management API",
    "DESCRIPTION": "Keys, teams, the model catalogue, usage and discovery. Staff only: "
    "`Authorization: Token <token>` (tokens are managed in the admin).",
    "VERSION": "1",
    "SCHEMA_PATH_PREFIX": "/manage/api",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ApiKeySourceEnum": "usage.models.ApiKey.Source",
        "UsageSourceEnum": "usage.models.UsageRecord.Source",
        "BudgetPeriodEnum": "usage.models.BudgetPeriod",
    },
}

# --- Serving -------------------------------------------------------------------------------------
HOST = env("HOST", "127.0.0.1")
PORT = envint("PORT", 8088)
WORKERS = envint("WORKERS", os.cpu_count() or 1)

# --- OCI -----------------------------------------------------------------------------------------
OCI_CONFIG_FILE = os.path.expanduser(env("OCI_CONFIG_FILE", "~/.oci/config"))
OCI_CONFIG_PROFILE = env("OCI_CONFIG_PROFILE", "DEFAULT")
OCI_AUTH_TYPE = (env("OCI_AUTH_TYPE", "API_KEY") or "API_KEY").upper()
OCI_REGION = env("OCI_REGION", "") or ""
OCI_COMPARTMENT = env("OCI_COMPARTMENT", "") or ""
OCI_GENAI_ENDPOINT = (env("OCI_GENAI_ENDPOINT", "") or "").rstrip("/")
OCI_GENAI_MANAGEMENT_ENDPOINT = (env("OCI_GENAI_MANAGEMENT_ENDPOINT", "") or OCI_GENAI_ENDPOINT).rstrip("/")
OCI_GENAI_CA_BUNDLE = env("OCI_GENAI_CA_BUNDLE", "") or ""
ALLOW_HTTP_UPSTREAMS = envbool("ALLOW_HTTP_UPSTREAMS", False)

# --- Gateway behaviour ---------------------------------------------------------------------------
GATEWAY_API_KEYS = envlist("GATEWAY_API_KEYS")
GATEWAY_KEY_PEPPER = envsecret("GATEWAY_KEY_PEPPER") or SECRET_KEY
# Keyless clients (off by default): requests without a key from these ranges count as the named key.
GATEWAY_ANONYMOUS_KEY = env("GATEWAY_ANONYMOUS_KEY", "") or ""
GATEWAY_ANONYMOUS_CIDRS = envlist("GATEWAY_ANONYMOUS_CIDRS")
GATEWAY_TRACE_UPSTREAM = envbool("GATEWAY_TRACE_UPSTREAM", False)
GATEWAY_ENCRYPTION_KEY = envsecret("GATEWAY_ENCRYPTION_KEY", "") or ""
HEARTBEAT_SECONDS = envfloat("HEARTBEAT_SECONDS", 15.0)
UPSTREAM_CONNECT_TIMEOUT = envfloat("UPSTREAM_CONNECT_TIMEOUT", 10.0)
UPSTREAM_READ_TIMEOUT = envfloat("UPSTREAM_READ_TIMEOUT", 300.0)
UPSTREAM_POOL_SIZE = envint("UPSTREAM_POOL_SIZE", 256)
CACHE_RECHECK_SECONDS = envfloat("CACHE_RECHECK_SECONDS", 5.0)
USAGE_FLUSH_SECONDS = envfloat("USAGE_FLUSH_SECONDS", 1.0)
USAGE_RETENTION_DAYS = envint("USAGE_RETENTION_DAYS", 0)  # prune_usage without --days; 0: no default
CHAT_MAX_BYTES = envint("CHAT_MAX_BYTES", 20 * 1024 * 1024)
EMBEDDINGS_MAX_BYTES = envint("EMBEDDINGS_MAX_BYTES", 20 * 1024 * 1024)
EMBEDDINGS_MAX_CONCURRENCY = envint("EMBEDDINGS_MAX_CONCURRENCY", 4)  # upstream calls per deployment at once
EMBEDDINGS_MAX_INPUTS = envint("EMBEDDINGS_MAX_INPUTS", 2048)

# --- Limits (usage/limits.py) --------------------------------------------------------------------
# When Redis (or, without Redis, the database) cannot be reached: let calls through unlimited (open) or
# refuse them with 503 (closed), per kind. Either way an ERROR is logged.
LIMITS_FAIL_OPEN_RATES = envbool("LIMITS_FAIL_OPEN_RATES", True)
LIMITS_FAIL_OPEN_BUDGETS = envbool("LIMITS_FAIL_OPEN_BUDGETS", False)
LIMITS_REDIS_TIMEOUT = envfloat("LIMITS_REDIS_TIMEOUT", 0.5)
# Output tokens reserved for a call that names no max_tokens and whose deployment sets no default or cap.
LIMITS_DEFAULT_MAX_OUTPUT_TOKENS = envint("LIMITS_DEFAULT_MAX_OUTPUT_TOKENS", 4096)
# A parallel-request slot held by a process that died is freed after this long.
LIMITS_SLOT_TTL_SECONDS = envint("LIMITS_SLOT_TTL_SECONDS", 900)
# Tag of the Redis counters; default: derived from the database name (installations sharing one Redis).
LIMITS_REDIS_PREFIX = env("LIMITS_REDIS_PREFIX", "") or ""

# --- Logging -------------------------------------------------------------------------------------
LOG_LEVEL = (env("LOG_LEVEL", "INFO") or "INFO").upper()
LOG_FORMAT = env("LOG_FORMAT", "text")
LOG_DIR = env("LOG_DIR", "") or ""
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "gateway_project.logging.RedactSecretsFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "gateway_project.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "text",
            "filters": ["redact"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"oci": {"level": "WARNING"}, "urllib3": {"level": "WARNING"}},
}
if LOG_DIR:
    Path(LOG_DIR).mkdir(parents=True, exist_ok=True)
    LOGGING["handlers"]["file"] = {
        "class": "logging.handlers.WatchedFileHandler",
        "filename": str(Path(LOG_DIR) / "gateway.log"),
        "formatter": "json" if LOG_FORMAT == "json" else "text",
        "filters": ["redact"],
    }
    LOGGING["root"]["handlers"].append("file")

from .logging import install_redaction  # noqa: E402

install_redaction()

# --- Routing and resilience (per-deployment timeouts live in the registry) -------------------------
BREAKER_FAILURES = envint("BREAKER_FAILURES", 5)
BREAKER_ERROR_RATE = envfloat("BREAKER_ERROR_RATE", 0.5)
BREAKER_MIN_CALLS = envint("BREAKER_MIN_CALLS", 10)
BREAKER_WINDOW_S = envfloat("BREAKER_WINDOW_S", 30.0)
BREAKER_COOLDOWN_S = envfloat("BREAKER_COOLDOWN_S", 30.0)
RETRY_BASE_DELAY_S = envfloat("RETRY_BASE_DELAY_S", 0.2)
RETRY_MAX_DELAY_S = envfloat("RETRY_MAX_DELAY_S", 5.0)
REQUEST_DEADLINE_S = envfloat("REQUEST_DEADLINE_S", 900.0)
