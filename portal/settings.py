"""Switchyard settings: one file, driven by environment variables.

Without DEBUG=true this is production: every transport-security setting is on, and SECRET_KEY
and AZURE_MODE must be set. With DEBUG=true (`make run`, the test suite) the defaults give the
embedded setup: SQLite and a filesystem broker under var/, the local Azure emulator. The
variables are listed in README.md.
"""

from decimal import Decimal
from pathlib import Path

import django_stubs_ext
import environ
from celery.schedules import crontab
from csp.constants import NONCE, NONE, SELF

# Lets generic admin and queryset classes be subscripted at run time, as the type hints do.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Production unless the environment says otherwise: only DEBUG=true (which `make run` sets) brings
# the development secret key and the local Azure emulator as defaults. A production host that
# forgot a variable refuses to start instead of running on a published key or a fake Azure.
DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str(
    "SECRET_KEY", default="django-insecure-switchyard-development-key-not-for-production" if DEBUG else ""
)
# Azure: the local emulator or real Azure with DefaultAzureCredential (provisioning/azure.py).
AZURE_MODE = env.str("AZURE_MODE", default="emulator" if DEBUG else "")
_missing = [
    advice
    for missing, advice in (
        (not SECRET_KEY, "Set SECRET_KEY to a long random string."),
        (
            not AZURE_MODE,
            "Set AZURE_MODE=azure for real Azure, or AZURE_MODE=emulator for the local emulator.",
        ),
    )
    if missing
]
if _missing:
    raise environ.ImproperlyConfigured(
        " ".join(["Switchyard runs as production (DEBUG is not true).", *_missing])
        + " For development, set DEBUG=true instead (make run does)."
    )
if AZURE_MODE not in {"emulator", "azure"}:
    raise environ.ImproperlyConfigured(
        f"AZURE_MODE={AZURE_MODE} is not a mode: set AZURE_MODE=azure for real Azure, "
        "or AZURE_MODE=emulator for the local emulator."
    )
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "portal.admin_site.SwitchyardAdminConfig",  # django.contrib.admin, with the site of that module
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials.apps.SimpleAppConfig",
    "csp",
    # django-ninja's templates and the Swagger UI assets it ships (pinned with it): the API's
    # reference page (/api/v1/docs) serves them from here, never from a CDN.
    "ninja",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "org",
    "audit",
    "provisioning",
    "money",
    "calls",
    "grounding",
    "chat",
    "gateway",
    "approvals",
    "reports",
    "api",
    "portal",
]

# Django's own middleware, in versions whose hooks run on the event loop under ASGI
# (portal/runtime/middleware.py): the streamed chat must not wait for a thread per hook.
MIDDLEWARE = [
    # First, so that every response (a redirect to HTTPS too) names its request id.
    "portal.middleware.AuditOriginMiddleware",
    "portal.runtime.middleware.SecurityMiddleware",
    "portal.middleware.RequestSizeMiddleware",
    "portal.runtime.middleware.StaticFilesMiddleware",
    "portal.runtime.middleware.SessionMiddleware",
    "portal.runtime.middleware.CommonMiddleware",
    "portal.runtime.middleware.CsrfViewMiddleware",
    "portal.runtime.middleware.AuthenticationMiddleware",
    "portal.runtime.middleware.LoginRequiredMiddleware",
    "portal.runtime.middleware.MessageMiddleware",
    "portal.runtime.middleware.XFrameOptionsMiddleware",
    "portal.runtime.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

# Django's deploy checks find its security, CSRF and clickjacking middleware by dotted path; the
# event-loop versions above subclass them, and
# `portal.runtime.middleware.check_middleware_settings` runs those checks for them instead.
SILENCED_SYSTEM_CHECKS = ["security.W001", "security.W002", "security.W003"]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

# Compiled templates are cached in production; in development edits show at once. The partials
# loader must be the outer one: wrapped in the cached loader it is never asked for "page.html#part".
template_loaders: list[object] = [
    "django.template.loaders.filesystem.Loader",
    "django.template.loaders.app_directories.Loader",
]
if not DEBUG:
    template_loaders = [("django.template.loaders.cached.Loader", template_loaders)]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.navigation.navigation",
            ],
            "loaders": [("template_partials.loader.Loader", template_loaders)],
            "builtins": ["template_partials.templatetags.partials"],
        },
    }
]

# Database: SQLite under var/ unless DATABASE_URL names another (PostgreSQL in production).
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'switchyard.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # web, worker and beat share the file: WAL lets readers proceed during a write, and
    # IMMEDIATE transactions make writers queue instead of failing with "database is locked".
    # In WAL mode, synchronous=NORMAL syncs at checkpoints instead of at every commit: still
    # never corrupt, and a commit (one per chat answer) no longer waits for the disk.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # A file, not memory, so that the processes a test starts (a Celery worker) share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-switchyard.sqlite3")}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "org.User"
# Django's and allauth's, remembering the signed-in person between requests (org.auth).
AUTHENTICATION_BACKENDS = [
    "org.auth.ModelBackend",
    "org.auth.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"

# Sign-in: email + password for demos and small installs; Microsoft Entra ID (OpenID Connect)
# when ENTRA_TENANT_ID and ENTRA_CLIENT_ID are set, and then a password signs in only a
# break-glass account. Local self-sign-up is off: people arrive through Entra ID or an admin
# creates them.
ACCOUNT_ADAPTER = "org.adapters.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "org.adapters.SocialAccountAdapter"
# The forms that give a password refuse accounts that sign in with Entra ID and, while Entra
# sign-in is on, every account but break-glass ones (org.passwords).
ACCOUNT_FORMS = {
    "change_password": "org.forms.ChangePasswordForm",
    "set_password": "org.forms.SetPasswordForm",
    "reset_password_from_key": "org.forms.ResetPasswordKeyForm",
}
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGIN_ON_PASSWORD_RESET = True
ACCOUNT_SESSION_REMEMBER = None
ACCOUNT_ALLOW_SIGNUP = env.bool("ACCOUNT_ALLOW_SIGNUP", default=False)
# The sign-in page lists the demo sign-ins (seed_demo) in development only.
SHOW_DEMO_SIGNINS = env.bool("SHOW_DEMO_SIGNINS", default=DEBUG)
# The demo's API key (seed_demo), kept whole so `make run` can print it again: the database has
# only its hash.
DEMO_API_KEY_FILE = VAR_DIR / "demo-api-key"
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_STORE_TOKENS = False

ENTRA_TENANT_ID = env.str("ENTRA_TENANT_ID", default="")
ENTRA_CLIENT_ID = env.str("ENTRA_CLIENT_ID", default="")
ENTRA_CLIENT_SECRET = env.str("ENTRA_CLIENT_SECRET", default="")
ENTRA_AUTHORITY = env.str("ENTRA_AUTHORITY", default="https://login.microsoftonline.com")
ENTRA_GRAPH_URL = env.str("ENTRA_GRAPH_URL", default="https://graph.microsoft.com")
# Entra ID group object ids that make someone a platform admin, a finance or a security approver.
ENTRA_ADMIN_GROUP_ID = env.str("ENTRA_ADMIN_GROUP_ID", default="")
ENTRA_FINANCE_GROUP_ID = env.str("ENTRA_FINANCE_GROUP_ID", default="")
ENTRA_SECURITY_GROUP_ID = env.str("ENTRA_SECURITY_GROUP_ID", default="")
ENTRA_ENABLED = bool(ENTRA_CLIENT_ID and ENTRA_TENANT_ID)
# Development only (`make run`): with Entra sign-in on, every local account may still sign in with
# its password, so the demo's password sign-ins work beside "Sign in with Microsoft". Ignored
# unless DEBUG is on, and `check --deploy` refuses it (org.checks).
PASSWORD_SIGN_IN_WITH_ENTRA = env.bool("PASSWORD_SIGN_IN_WITH_ENTRA", default=False)
SOCIALACCOUNT_PROVIDERS: dict[str, dict[str, object]] = {
    "openid_connect": {
        # PKCE (S256) on every authorization request, and a nonce checked in the ID token.
        "OAUTH_PKCE_ENABLED": True,
        "provider_class": "org.entra_provider.EntraProvider",
        "APPS": [],
    }
}
if ENTRA_ENABLED:
    SOCIALACCOUNT_PROVIDERS["openid_connect"]["APPS"] = [
        {
            "provider_id": "entra",
            "name": "Microsoft Entra ID",
            "client_id": ENTRA_CLIENT_ID,
            "secret": ENTRA_CLIENT_SECRET,
            "settings": {
                "server_url": f"{ENTRA_AUTHORITY}/{ENTRA_TENANT_ID}/v2.0",
                # The id_token carries oid, email and the groups claim; no userinfo round trip.
                "fetch_userinfo": False,
                "uid_field": "oid",
                # GroupMember.Read.All lets us read memberOf when the token has a groups overage.
                "scope": ["openid", "profile", "email", "User.Read", "GroupMember.Read.All"],
            },
        }
    ]

# Azure (AZURE_MODE is read at the top, with DEBUG).
AZURE_EMULATOR_URL = env.str("AZURE_EMULATOR_URL", default="http://127.0.0.1:8010")
# An empty value (as docker-compose passes an unset variable) means the default, too.
AZURE_TENANT_ID = (
    env.str("AZURE_TENANT_ID", default="") or ENTRA_TENANT_ID or "00000000-0000-0000-0000-000000000000"
)
# The object id of the portal's own identity (managed identity in Azure): provisioning grants it
# data-plane access to the keyless accounts it creates.
AZURE_PORTAL_PRINCIPAL_ID = (
    env.str("AZURE_PORTAL_PRINCIPAL_ID", default="") or "11111111-2222-3333-4444-555555555555"
)

# The gateway takes Microsoft Entra ID access tokens for Switchyard's API (gateway/entra.py): v1.0
# tokens name its app id URI as their audience, v2.0 tokens its application (client) id, and both
# are accepted. The issuer and signing keys are the tenant's at ENTRA_AUTHORITY, or the emulator's
# in emulator mode, where the emulator is the token issuer.
GATEWAY_TOKEN_AUDIENCE = env.str("GATEWAY_TOKEN_AUDIENCE", default="api://switchyard")
GATEWAY_TOKEN_CLIENT_ID = env.str("GATEWAY_TOKEN_CLIENT_ID", default="") or (
    # The application id the emulator registers for api://switchyard (its identity_registry.py).
    "5f3c9a2e-8b1d-4e6f-a7c0-2d9b8e4f1a63" if AZURE_MODE == "emulator" else ENTRA_CLIENT_ID
)
GATEWAY_TOKEN_TENANT_ID = env.str("GATEWAY_TOKEN_TENANT_ID", default="") or ENTRA_TENANT_ID or AZURE_TENANT_ID
# A token naming a key the cached key set lacks makes the gateway fetch the set again, but not
# more often than this, so a flood of made-up key ids cannot hammer the issuer.
GATEWAY_JWKS_REFRESH_FLOOR_SECONDS = env.int("GATEWAY_JWKS_REFRESH_FLOOR_SECONDS", default=60)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True


def _documents_credential() -> object:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Documents uploaded for grounding: on the file system under var/ by default; in Azure Blob
# Storage (django-storages, keyless with the app's identity) when DOCUMENTS_BLOB_ACCOUNT is set.
DOCUMENTS_BLOB_ACCOUNT = env.str("DOCUMENTS_BLOB_ACCOUNT", default="")
DOCUMENTS_DIR = Path(env.str("DOCUMENTS_DIR", default=str(VAR_DIR / "documents")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "documents": (
        {
            "BACKEND": "storages.backends.azure_storage.AzureStorage",
            "OPTIONS": {
                "account_name": DOCUMENTS_BLOB_ACCOUNT,
                "azure_container": env.str("DOCUMENTS_BLOB_CONTAINER", default="documents"),
                "token_credential": _documents_credential(),
                "overwrite_files": False,
            },
        }
        if DOCUMENTS_BLOB_ACCOUNT
        else {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(DOCUMENTS_DIR), "base_url": None},
        }
    ),
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

REDIS_URL = env.str("REDIS_URL", default="")
CACHES = {
    "default": env.cache_url("CACHE_URL", default="locmemcache://")
    if not REDIS_URL
    else {"BACKEND": "portal.runtime.cache.RedisCache", "LOCATION": REDIS_URL}
}

# Celery: Redis in production (CELERY_BROKER_URL or REDIS_URL); embedded, a filesystem broker
# under var/ that needs no server.
BROKER_DIR = Path(env.str("CELERY_BROKER_DIR", default=str(VAR_DIR / "broker")))
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=env.str("REDIS_URL", default="filesystem://"))
if CELERY_BROKER_URL.startswith("filesystem://"):
    BROKER_DIR.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR),
        "data_folder_out": str(BROKER_DIR),
        # Without this the transport writes its control folder into the working directory.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The worker logs through LOGGING below (JSON in production, each line naming its task's id),
# not through the handlers Celery would put on the root logger instead.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# The audit trail (audit/): how often the scheduler checks its hash chain (admins are emailed
# when it breaks), how many years events stay in the database before they are archived to JSON
# Lines files in AUDIT_ARCHIVE_DIR (0: kept forever).
AUDIT_VERIFY_EVERY_SECONDS = env.float("AUDIT_VERIFY_EVERY_SECONDS", default=3600.0)
AUDIT_RETENTION_YEARS = env.int("AUDIT_RETENTION_YEARS", default=7)
AUDIT_ARCHIVE_DIR = Path(env.str("AUDIT_ARCHIVE_DIR", default=str(VAR_DIR / "audit-archive")))
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    # A worker that dies takes the countdown tasks it holds with it; this check sends a step
    # that is overdue again, so a run stalls seconds rather than minutes.
    "resume-stalled-provisioning": {"task": "provisioning.tasks.resume_stalled_runs_task", "schedule": 10.0},
    "check-drift": {"task": "provisioning.tasks.check_drift_task", "schedule": 15 * 60.0},
    "catalog-sync": {"task": "provisioning.tasks.catalog_sync_task", "schedule": 3600.0},
    "reconcile-reservations": {"task": "money.tasks.reconcile_reservations_task", "schedule": 60.0},
    "fold-call-hours": {"task": "calls.tasks.fold_call_hours_task", "schedule": 5 * 60.0},
    "forget-idempotency-keys": {"task": "api.tasks.idempotency_forget_task", "schedule": 3600.0},
    "purge-expired-conversations": {
        "task": "chat.tasks.purge_expired_conversations_task",
        "schedule": 3600.0,
    },
    "purge-expired-documents": {
        "task": "grounding.tasks.purge_expired_documents_task",
        "schedule": 3600.0,
    },
    "search-storage-record": {"task": "grounding.tasks.search_storage_record_task", "schedule": 3600.0},
    "follow-provisioning-requests": {
        "task": "approvals.tasks.follow_provisioning_task",
        "schedule": 60.0,
    },
    "deployment-expiry": {
        "task": "approvals.tasks.check_expiry_task",
        "schedule": crontab(hour=6, minute=0),
    },
    "budget-alerts": {"task": "reports.tasks.budget_alerts_task", "schedule": 15 * 60.0},
    "reconcile-costs": {"task": "reports.tasks.reconcile_costs_task", "schedule": 6 * 3600.0},
    "audit-verify": {"task": "reports.tasks.audit_chain_check_task", "schedule": AUDIT_VERIFY_EVERY_SECONDS},
    "audit-archive": {
        "task": "reports.tasks.archive_audit_events_task",
        "schedule": crontab(hour=3, minute=15),
    },
}
# The directory sync (org.directory_sync): how often memberships, platform roles and leavers'
# access follow Microsoft Entra ID between sign-ins, read from Microsoft Graph.
ENTRA_SYNC_EVERY_SECONDS = env.float("ENTRA_SYNC_EVERY_SECONDS", default=900.0)
if ENTRA_ENABLED:
    CELERY_BEAT_SCHEDULE["directory-sync"] = {
        "task": "org.tasks.directory_sync_task",
        "schedule": ENTRA_SYNC_EVERY_SECONDS,
        # A sync waiting longer than its interval (no worker up) is superseded by the next one.
        "options": {"expires": ENTRA_SYNC_EVERY_SECONDS},
    }
# Seconds between looks at a long-running Azure operation (Azure's own Retry-After is honoured
# for throttling; provisioning polls at this pace).
PROVISIONING_POLL_SECONDS = env.float("PROVISIONING_POLL_SECONDS", default=2.0)

# Admission (money.admission): a person's requests and tokens per minute (counted on Redis when
# there is one, else in the database), and how long a call's reservation lasts before a call
# whose process died is settled on an estimate.
CHAT_USER_REQUESTS_PER_MINUTE = env.int("CHAT_USER_REQUESTS_PER_MINUTE", default=20)
CHAT_USER_TOKENS_PER_MINUTE = env.int("CHAT_USER_TOKENS_PER_MINUTE", default=40_000)
ADMISSION_RESERVATION_SECONDS = env.int("ADMISSION_RESERVATION_SECONDS", default=900)
# The longest answer the chat asks for (the model's own maximum when that is smaller), and the
# largest question one turn may send. Azure counts a call's max_tokens against the deployment's
# tokens per minute when it admits it, so a larger answer limit lets fewer calls in at once.
CHAT_MAX_ANSWER_TOKENS = env.int("CHAT_MAX_ANSWER_TOKENS", default=2_048)
CHAT_MAX_MESSAGE_TOKENS = env.int("CHAT_MAX_MESSAGE_TOKENS", default=10_000)
# The chat's database work runs on one thread per web process that keeps its connection
# (calls/database.py); off, it runs on Django's thread per request.
CHAT_DATABASE_THREAD = env.bool("CHAT_DATABASE_THREAD", default=True)

# Grounding: the files a data set may hold and how they are read (grounding/files.py). An Office
# file is a zip: it may expand to at most GROUNDING_MAX_EXPANDED_BYTES, hold at most
# GROUNDING_MAX_ZIP_ENTRIES parts, and no part larger than 100 KiB may be compressed more than
# GROUNDING_MAX_COMPRESSION_RATIO to 1 (Apache POI's zip-bomb rule; real Office XML stays far below).
GROUNDING_MAX_FILE_BYTES = env.int("GROUNDING_MAX_FILE_BYTES", default=25 * 1024 * 1024)
# Pages of a PDF, slides of a presentation, sheets of a workbook.
GROUNDING_MAX_PAGES = env.int("GROUNDING_MAX_PAGES", default=2_000)
GROUNDING_MAX_EXPANDED_BYTES = env.int("GROUNDING_MAX_EXPANDED_BYTES", default=200 * 1024 * 1024)
GROUNDING_MAX_COMPRESSION_RATIO = env.int("GROUNDING_MAX_COMPRESSION_RATIO", default=100)
GROUNDING_MAX_ZIP_ENTRIES = env.int("GROUNDING_MAX_ZIP_ENTRIES", default=10_000)
# Rows read from a workbook, all its sheets together.
GROUNDING_MAX_SHEET_ROWS = env.int("GROUNDING_MAX_SHEET_ROWS", default=100_000)
# Passages (grounding/chunks.py): tokens of the chat models' encoding per chunk, and how many of a
# chunk's last tokens the next one repeats so a passage cut mid-thought keeps its context.
GROUNDING_CHUNK_TOKENS = env.int("GROUNDING_CHUNK_TOKENS", default=400)
GROUNDING_CHUNK_OVERLAP_TOKENS = env.int("GROUNDING_CHUNK_OVERLAP_TOKENS", default=60)
GROUNDING_MAX_DOCUMENTS = env.int("GROUNDING_MAX_DOCUMENTS", default=2_000)  # per data set
# The landing zone's embeddings deployment and search service, made when its first data set needs them.
GROUNDING_EMBEDDINGS_MODEL = env.str("GROUNDING_EMBEDDINGS_MODEL", default="text-embedding-3-small")
GROUNDING_EMBEDDINGS_VERSION = env.str("GROUNDING_EMBEDDINGS_VERSION", default="1")
# Thousands of tokens a minute for the embeddings deployment.
GROUNDING_EMBEDDINGS_CAPACITY = env.int("GROUNDING_EMBEDDINGS_CAPACITY", default=350)
GROUNDING_EMBEDDING_DIMENSIONS = env.int("GROUNDING_EMBEDDING_DIMENSIONS", default=1536)
GROUNDING_SEARCH_SKU = env.str("GROUNDING_SEARCH_SKU", default="basic")
# Passages a grounded turn retrieves and puts in the prompt.
GROUNDING_TOP_PASSAGES = env.int("GROUNDING_TOP_PASSAGES", default=5)

# The gateway (/openai/...): the largest request body it reads (images inline as base64 count).
GATEWAY_MAX_BODY_BYTES = env.int("GATEWAY_MAX_BODY_BYTES", default=20 * 1024 * 1024)

# The automation API (/api/v1/, the api app): requests per minute for each personal access token
# (and for each person calling with an Entra ID token or the browser session), and how long a new
# personal access token lasts unless its owner says otherwise.
API_REQUESTS_PER_MINUTE = env.int("API_REQUESTS_PER_MINUTE", default=120)
# How long an `Idempotency-Key` is remembered: a POST sent again with it within this many hours
# gets the first answer again.
API_IDEMPOTENCY_HOURS = env.int("API_IDEMPOTENCY_HOURS", default=24)

# Cost reconciliation: Azure's billed cost per account may differ from the metered one by this
# share of the billed cost, and at least by this many USD, before the page flags it.
COST_RECONCILIATION_TOLERANCE_SHARE = Decimal(env.str("COST_RECONCILIATION_TOLERANCE_SHARE", default="0.02"))
COST_RECONCILIATION_TOLERANCE_MINIMUM = Decimal(
    env.str("COST_RECONCILIATION_TOLERANCE_MINIMUM", default="1.00")
)

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Switchyard <switchyard@example.com>")
# The address people open Switchyard at: links in emails point here.
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")
# The address applications reach the gateway at (the deployment page's "how to call it"), when
# it differs from the one people open the portal at; empty: the page's own address.
GATEWAY_PUBLIC_URL = env.str("GATEWAY_PUBLIC_URL", default="")

# Sessions are read through the cache (written through to the database): a signed-in request,
# a chat turn included, costs no session query.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

# Security. Production (DEBUG=false) runs behind TLS: secure cookies, HSTS, HTTPS redirect.
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# How many reverse proxies stand in front of the app: with one or more, the audit trail takes the
# caller's address from X-Forwarded-For (which they append to); with none it would be forged.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        # Browsers apply form-action to the redirect after the sign-in POST.
        "form-action": [SELF, ENTRA_AUTHORITY] if ENTRA_ENABLED else [SELF],
    }
}

# Prometheus's /metrics (portal/metrics.py): the bearer token a scrape must send. Unset, /metrics
# answers only callers on loopback whose request no proxy relayed (a Prometheus on the same host).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# Log lines: `json` (production's default; portal/logs.py) or `text` (development's), each with the
# id of the request or Celery task that wrote it.
LOG_FORMAT = env.str("LOG_FORMAT", default="text" if DEBUG else "json")
if LOG_FORMAT not in {"json", "text"}:
    raise environ.ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT} is not a format: set json or text.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "portal.logs.RequestIdFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"},
        "json": {"()": "portal.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]}
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's default configuration, applied before this one, gives "django" a console
        # handler of its own on top of the root's, so every django.request line came out twice.
        # Naming the logger here drops that handler; its records reach the root's alone, at the
        # root's level.
        "django": {"handlers": [], "level": "NOTSET", "propagate": True},
        "django.db.backends": {"level": "WARNING"},
        # The Azure SDK logs every HTTP request and response at INFO.
        "azure": {"level": "WARNING"},
    },
}
