"""Settings for the shop example, read from the environment.

| variable | default |
| --- | --- |
| SHOP_DB_PATH | examples/django/var/db.sqlite3 |
| SHOP_SECRET_KEY | a development key (never use it in production) |
| SHOP_ALLOWED_HOSTS | localhost,127.0.0.1 (comma separated) |
| SHOP_DEBUG | off (1, true, yes or on turn it on) |

An empty variable counts as unset, so bigtop.ini can pass them through with
``NAME = $NAME`` whether or not they are set.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str) -> str:
    return os.environ.get(name) or default


# DEVELOPMENT ONLY: this key is public. Set SHOP_SECRET_KEY anywhere else.
SECRET_KEY = env("SHOP_SECRET_KEY", "django-insecure-dev-only-shop-example-key-do-not-deploy")

DEBUG = env("SHOP_DEBUG", "").lower() in ("1", "true", "yes", "on")

ALLOWED_HOSTS = [h.strip() for h in env("SHOP_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",")
                 if h.strip()]

INSTALLED_APPS = [
    "orders",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    },
]

DB_PATH = Path(env("SHOP_DB_PATH", str(BASE_DIR / "var" / "db.sqlite3")))
DB_PATH.parent.mkdir(parents=True, exist_ok=True)

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DB_PATH,
        # Two web processes and the worker write to one file: wait for the
        # lock rather than fail with "database is locked" (see orders/apps.py
        # for the WAL journal).
        "OPTIONS": {"timeout": 20},
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# With DEBUG off Django sends errors only to ADMINS by mail. Instead, pass
# warnings and errors up to the root logger: bigtop-wsgi's handler writes
# them to stderr, where bigtop collects them (`bigtopctl logs web`), and
# elsewhere Python's last-resort handler does the same.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"django": {"handlers": [], "level": "WARNING", "propagate": True}},
}
