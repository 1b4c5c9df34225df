"""Settings for the AssetSonar portal, read from the environment (see .env.example).

SQLite is the embedded default; DATABASE_URL=postgres://... selects PostgreSQL. A `.env` file in the
project root is read when present (the run command writes one with a generated SECRET_KEY).
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _load_dotenv(path: Path) -> None:
    """Read KEY=VALUE lines into os.environ without overriding what the shell already set."""
    if not path.is_file():
        return
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        os.environ.setdefault(key.strip(), value.strip().strip("'\""))


_load_dotenv(BASE_DIR / ".env")


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


DEBUG = env_bool("DEBUG")
TESTING = env_bool("ASSETSONAR_TESTING")

_INSECURE_KEY = "django-insecure-dev-only-key-never-use-in-production"  # noqa: S105 - refused below
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY to a long random value (see .env.example), "
            "or set DEBUG=true for local development."
        )
    SECRET_KEY = _INSECURE_KEY
elif not (DEBUG or TESTING) and (SECRET_KEY.startswith("django-insecure") or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured(
        "SECRET_KEY is too weak for production: use at least 50 random characters."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "django_filters",
    "django_q",
    "django_otp",
    # Holds no devices (automations.AuthenticatorDevice keeps the secret encrypted) but stays:
    # that model reuses TOTPDevice's verification, and migration automations 0004 reads its rows.
    "django_otp.plugins.otp_totp",
    "axes",
    "csp",
    "assetsonar",
    "members",
    "assets",
    "licenses",
    "automations",
    "provisioning",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "assetsonar.middleware.no_store_when_signed_in",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",
    # Shown dates in the browser's own format, the one its date inputs use.
    "assetsonar.locale_dates.date_locale_middleware",
]

ROOT_URLCONF = "assetsonar.urls"
WSGI_APPLICATION = "assetsonar.wsgi.application"
ASGI_APPLICATION = "assetsonar.asgi.application"

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
                "assetsonar.context_processors.portal",
            ],
            # Dates in the user's locale on every page (assetsonar/locale_dates.py).
            "builtins": ["assetsonar.templatetags.dates", "assetsonar.templatetags.links"],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------
# SQLite: WAL so the web server and the worker read while the other writes, a busy timeout instead
# of "database is locked", and IMMEDIATE transactions so a writer takes the lock up front (no
# deadlock between two deferred transactions upgrading to write at the same time).
_SQLITE_PATH = os.environ.get("SQLITE_PATH", str(BASE_DIR / "db.sqlite3"))
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True
        )
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _SQLITE_PATH,
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
                ),
            },
            "TEST": {"NAME": os.environ.get("SQLITE_TEST_PATH", "")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -----------------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Sign-in throttling (django-axes): after AXES_FAILURE_LIMIT failures for one user name from one
# address, that pair is locked out for AXES_COOLOFF_MINUTES.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("AXES_COOLOFF_MINUTES", 15) / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

# --- Security ------------------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 60 * 60 * 10)
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie; kept default
if not DEBUG and not TESTING:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    # Preloading is an opt-in for the whole domain and all its subdomains that browsers ship and
    # cannot be withdrawn quickly, so it stays the operator's choice; leaving it off is not a
    # misconfiguration, and `check --deploy` must not fail on it.
    if not SECURE_HSTS_PRELOAD:
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    if env_bool("BEHIND_PROXY"):  # the setting is below, with `manage.py serve`'s
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- I18N / static --------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Where collectstatic puts the files whitenoise serves.
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", "") or BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or TESTING
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG or TESTING
# Look files up per request where there is no collectstatic output (development, tests); the
# default follows DEBUG, which pytest-django switches off, and then warns about STATIC_ROOT.
WHITENOISE_AUTOREFRESH = DEBUG or TESTING

# --- Cache. Throttles (axes, OTP) live in the database, so a per-process cache is enough. -------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- django-q2 ------------------------------------------------------------------------------------
# timeout < retry: a task that runs past `timeout` is killed before the broker would hand it to a
# second worker, so one task never runs twice at once. Our own attempt counter (automations) covers
# killed workers, which django-q2 does not count.
Q_CLUSTER = {
    "name": "assetsonar",
    "workers": env_int("Q_WORKERS", 2),
    "timeout": env_int("Q_TIMEOUT", 120),
    "retry": env_int("Q_RETRY", 180),
    "max_attempts": env_int("Q_MAX_ATTEMPTS", 5),
    "queue_limit": 50,
    "bulk": 10,
    "catch_up": False,
    "ack_failures": True,
    "save_limit": 1000,
    "label": "Background tasks",
    "poll": 0.2,
    "sync": env_bool("Q_SYNC", False),
}
if os.environ.get("Q_BROKER", "orm") == "redis":
    Q_CLUSTER["redis"] = REDIS_URL or "redis://127.0.0.1:6379/0"
else:
    Q_CLUSTER["orm"] = "default"

# --- Product settings -----------------------------------------------------------------------------
# Allow plain-http webhook URLs (https only otherwise).
WEBHOOK_ALLOW_HTTP = env_bool("WEBHOOK_ALLOW_HTTP", False)
# Networks (CIDR) that webhooks and MDM base URLs may reach although they are not global addresses.
OUTBOUND_ALLOWED_NETWORKS = env_list("OUTBOUND_ALLOWED_NETWORKS")
# Seconds an outbound connection (webhook, MDM) stays open for the next request to the same
# address (assetsonar/net.py, reused_session); 0: a new connection for every request.
OUTBOUND_KEEPALIVE = env_int("OUTBOUND_KEEPALIVE", 4)
# Key(s) for encrypting secrets at rest (Fernet). Defaults to one derived from SECRET_KEY.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS")
OTP_TOTP_ISSUER = os.environ.get("OTP_TOTP_ISSUER", "AssetSonar")

# After a webhook signing secret is rotated, the old one keeps signing beside the new one for
# this many hours (a second signature in the webhook-signature header); 0 drops it at once.
WEBHOOK_SECRET_GRACE_HOURS = env_int("WEBHOOK_SECRET_GRACE_HOURS", 24)

# Permissions-Policy header (django-permissions-policy): the portal uses no camera, microphone,
# location, payment or device API, so no page (nor anything injected into one) may ask for them;
# only the "Copy" buttons write to the clipboard.
PERMISSIONS_POLICY = {
    "accelerometer": [],
    "autoplay": [],
    "bluetooth": [],
    "browsing-topics": [],
    "camera": [],
    "clipboard-read": [],
    "clipboard-write": ["self"],
    "display-capture": [],
    "geolocation": [],
    "gyroscope": [],
    "hid": [],
    "idle-detection": [],
    "magnetometer": [],
    "microphone": [],
    "midi": [],
    "payment": [],
    "publickey-credentials-get": [],
    "screen-wake-lock": [],
    "serial": [],
    "usb": [],
    "xr-spatial-tracking": [],
}

# SCIM provisioning (/scim/v2/, provisioning/): requests each token may make per window (then
# 429 with Retry-After), the largest request body accepted (then 413), and the page sizes.
SCIM_RATE_LIMIT = env_int("SCIM_RATE_LIMIT", 600)
SCIM_RATE_WINDOW = env_int("SCIM_RATE_WINDOW", 60)
# Requests without a valid token one address may make per window (then 429 with Retry-After).
SCIM_UNAUTHENTICATED_RATE_LIMIT = env_int("SCIM_UNAUTHENTICATED_RATE_LIMIT", 30)
SCIM_MAX_BODY_BYTES = env_int("SCIM_MAX_BODY_BYTES", 256 * 1024)
# Days the SCIM request log (the Provisioning page) keeps.
SCIM_REQUEST_LOG_DAYS = env_int("SCIM_REQUEST_LOG_DAYS", 30)
SCIM_MAX_RESULTS = 200
SCIM_DEFAULT_COUNT = 100

# --- Worker shutdown (assetsonar/worker.py, `manage.py worker`) ---
# Seconds from a stop signal to the last cluster process gone: fetched tasks are handed back,
# running ones get until 2 s before it. Under 10 s, before systemd's and Docker's own kill.
WORKER_STOP_TIMEOUT = env_int("WORKER_STOP_TIMEOUT", 6)
# --- Serving, the `make run` demo, MDM sign-in host (issue 7) -------------------------------------
# `manage.py serve` (waitress). Behind a TLS-terminating proxy (BEHIND_PROXY), waitress takes
# TRUSTED_PROXY_HEADERS only from a peer at TRUSTED_PROXY ("*": any peer; only where nothing but the
# proxy can reach the port) and drops them from anyone else, so a client cannot claim https.
BEHIND_PROXY = env_bool("BEHIND_PROXY")
TRUSTED_PROXY = os.environ.get("TRUSTED_PROXY", "") or "127.0.0.1"
TRUSTED_PROXY_HEADERS = env_list("TRUSTED_PROXY_HEADERS") or [
    "x-forwarded-proto",
    "x-forwarded-for",
]
WEB_THREADS = env_int("WEB_THREADS", 8)
# The `make run` demo: production settings (DEBUG off, the portal's own error pages) served over
# plain http, which only a browser on this machine may use: secure-only cookies, the HTTPS
# redirect and HSTS are off, and the portal answers to loopback host names only.
LOCAL_DEMO = env_bool("LOCAL_DEMO")
LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
if LOCAL_DEMO and not DEBUG and not TESTING:
    if set(ALLOWED_HOSTS) - set(LOOPBACK_HOSTS):
        raise ImproperlyConfigured(
            "LOCAL_DEMO=true serves over plain http and is only for this machine: ALLOWED_HOSTS "
            f"may only name {', '.join(LOOPBACK_HOSTS)}. Unset LOCAL_DEMO in production."
        )
    SECURE_SSL_REDIRECT = False
    SESSION_COOKIE_SECURE = False
    CSRF_COOKIE_SECURE = False
    SECURE_HSTS_SECONDS = 0
# Microsoft's sign-in host for Intune connections: login.microsoftonline.us (US Government),
# login.chinacloudapi.cn (China, 21Vianet); the Graph host is each connection's base URL.
MDM_INTUNE_LOGIN_URL = os.environ.get("MDM_INTUNE_LOGIN_URL", "https://login.microsoftonline.com")
# Scale (issue 12). Seconds an MDM request waits for one of its connection's request slots
# (MDMConnection.max_concurrent_requests, assets/mdm/throttle.py) before it is retried later.
MDM_THROTTLE_WAIT = env_int("MDM_THROTTLE_WAIT", 30)
# The django-q2 cluster's name: clusters with the same name and broker share one queue (several
# hosts); a different name keeps a second installation on the same Redis apart.
Q_CLUSTER["name"] = os.environ.get("Q_CLUSTER_NAME", Q_CLUSTER["name"])
# Task results kept (django-q2 save_limit; 0 keeps all, -1 none): benchmarks count them.
Q_CLUSTER["save_limit"] = env_int("Q_SAVE_LIMIT", Q_CLUSTER["save_limit"])

# --- Email (issue 9; assetsonar/mail.py) ----------------------------------------------------------
# SMTP when EMAIL_HOST is set; otherwise the console backend, so the demo's mails are printed to
# the worker's log instead of sent. Port 587 with STARTTLS by default; implicit TLS (port 465) is
# EMAIL_USE_SSL=true with EMAIL_USE_TLS=false. EMAIL_TIMEOUT bounds each wait on the server.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "AssetSonar <assetsonar@localhost>")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured(
        "EMAIL_USE_TLS (STARTTLS, port 587) and EMAIL_USE_SSL (implicit TLS, port 465) are both "
        "true: set one of them, e.g. EMAIL_USE_SSL=true with EMAIL_USE_TLS=false."
    )
if EMAIL_TIMEOUT <= 0:
    raise ImproperlyConfigured("EMAIL_TIMEOUT must be a number of seconds above 0.")
# The portal's address, for the links in emails ({{ portal_url }}, {{ member.url }}).
PORTAL_URL = os.environ.get("PORTAL_URL", "http://localhost:8000").rstrip("/")
if not PORTAL_URL.startswith(("https://", "http://")):
    raise ImproperlyConfigured(
        f"PORTAL_URL must start with https:// (or http://), e.g. https://assets.example.com; "
        f"it is {PORTAL_URL!r}."
    )

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # django-q2 logs every task at INFO (the sweeper runs each minute): quiet unless asked.
    "loggers": {
        "axes": {"level": "WARNING"},
        "django-q": {"level": os.environ.get("Q_LOG_LEVEL", "WARNING")},
    },
}
