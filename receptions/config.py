"""Configuration classes; values come from the environment only when the app is built."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

INSTANCE_DIR = Path(__file__).resolve().parent.parent / "instance"


def _sqlite_default() -> str:
    return f"sqlite:///{INSTANCE_DIR / 'ashyq-esik.sqlite3'}"


def normalise_database_url(url: str) -> str:
    """Let people write postgres:// or postgresql:// and still get psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Config:
    """Defaults suitable for a developer's machine."""

    SECRET_KEY: str | None = None
    IIN_HASH_KEY: str | None = None
    SQLALCHEMY_DATABASE_URI: str = ""
    # hide_parameters: an error logged with its SQL never carries the citizen's data with it.
    SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = {"hide_parameters": True}
    # A pooled PostgreSQL connection idle for this long is checked (SELECT 1) before use;
    # 0 checks every check-out (what pool_pre_ping does). SQLite files are never checked.
    DATABASE_PING_AFTER_IDLE_S = 1.0
    REDIS_URL: str | None = None

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    PERMANENT_SESSION_LIFETIME = 8 * 3600

    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = 4 * 3600

    LANGUAGES = ("kk", "ru", "en")
    BABEL_DEFAULT_LOCALE = "kk"
    BABEL_DEFAULT_TIMEZONE = "Asia/Almaty"
    BABEL_TRANSLATION_DIRECTORIES = str(Path(__file__).resolve().parent / "translations")

    RATELIMIT_ENABLED = True
    # Each worker counts in its own memory unless REDIS_URL is set (receptions/ratelimit.py).
    RATELIMIT_STORAGE_URI = "process://"
    RATELIMIT_HEADERS_ENABLED = True
    SIGN_IN_RATE_LIMIT = "10 per minute;50 per hour"
    BOOKING_RATE_LIMIT = "30 per hour"
    BOOKING_IIN_RATE_LIMIT = "10 per hour"
    STATUS_RATE_LIMIT = "30 per minute"
    BOOKINGS_PER_INSTITUTION_MONTH = 1
    SCHEDULE_HORIZON_DAYS = 120
    # A calendar change that reaches at most this many schedules brings them in line in the
    # administrator's request (one transaction with the change); more go to a background job.
    CALENDAR_CHANGE_INLINE_SCHEDULES = 25
    RETENTION_DAYS = 3 * 365
    # How long the link in a feedback request or a "really resolved?" question works (it is
    # signed, not stored: booking.answer_links); the manage page takes the answer after that.
    ANSWER_LINK_DAYS = 60

    # Notifications: "log" writes to instance/*.log (demo); "smtp" sends through MAIL_SERVER.
    MAIL_BACKEND = "log"
    MAIL_SERVER = "localhost"
    MAIL_PORT = 25
    MAIL_SENDER = "Ashyq Esik <no-reply@ashyq-esik.kz>"
    NOTIFY_SYNC = True
    # With NOTIFY_SYNC and no Redis, the web process also delivers whatever is pending and due
    # this often (receptions/notify/sweeper.py): the safety net of `make run` and demos, where
    # no cron runs `flask notify send`. 0 turns it off.
    NOTIFY_SWEEP_SECONDS = 5.0

    # The site's public address (scheme, host, and path if it is not served at the root): the
    # links in e-mails, SMS and invitations are built on it, never on the Host header of the
    # request that happened to queue them, and the hourly jobs, which have no request, need it.
    # Required in production; `make run` serves on it.
    PUBLIC_URL: str | None = "http://127.0.0.1:5000"

    # The domain in calendar events' UIDs; unset, the request's host name (receptions.urls).
    CALENDAR_UID_DOMAIN: str | None = None

    # Number of proxies in front of the app whose X-Forwarded-For is trusted.
    PROXY_COUNT = 0
    INVITATION_LIFETIME_HOURS = 72
    PAGE_SIZE = 50

    @classmethod
    def from_environment(cls) -> dict[str, Any]:
        """Read the settings that differ between deployments."""
        values: dict[str, Any] = {}
        url = os.environ.get("DATABASE_URL")
        values["SQLALCHEMY_DATABASE_URI"] = (
            normalise_database_url(url) if url else _sqlite_default()
        )
        for key in (
            "SECRET_KEY",
            "IIN_HASH_KEY",
            "REDIS_URL",
            "MAIL_BACKEND",
            "MAIL_SERVER",
            "MAIL_LOG_PATH",
            "SMS_LOG_PATH",
            "SIGN_IN_RATE_LIMIT",
            "BOOKING_RATE_LIMIT",
            "BOOKING_IIN_RATE_LIMIT",
            "STATUS_RATE_LIMIT",
            "MAIL_SENDER",
            "MAIL_USERNAME",
            "MAIL_PASSWORD",
            "CALENDAR_UID_DOMAIN",
            "PUBLIC_URL",
        ):
            if os.environ.get(key):
                values[key] = os.environ[key]
        if values.get("REDIS_URL"):
            values["RATELIMIT_STORAGE_URI"] = values["REDIS_URL"]
        if os.environ.get("NOTIFY_SYNC"):
            values["NOTIFY_SYNC"] = os.environ["NOTIFY_SYNC"].lower() in ("1", "true", "yes")
        if os.environ.get("NOTIFY_SWEEP_SECONDS"):
            values["NOTIFY_SWEEP_SECONDS"] = float(os.environ["NOTIFY_SWEEP_SECONDS"])
        if os.environ.get("MAIL_PORT"):
            values["MAIL_PORT"] = int(os.environ["MAIL_PORT"])
        if os.environ.get("PROXY_COUNT"):
            values["PROXY_COUNT"] = int(os.environ["PROXY_COUNT"])
        if os.environ.get("CALENDAR_CHANGE_INLINE_SCHEDULES"):
            values["CALENDAR_CHANGE_INLINE_SCHEDULES"] = int(
                os.environ["CALENDAR_CHANGE_INLINE_SCHEDULES"]
            )
        if os.environ.get("DATABASE_PING_AFTER_IDLE_S"):
            values["DATABASE_PING_AFTER_IDLE_S"] = float(os.environ["DATABASE_PING_AFTER_IDLE_S"])
        return values


class DevelopmentConfig(Config):
    """`make run`: local SQLite, throwaway keys generated once per instance folder."""


class ProductionConfig(Config):
    PUBLIC_URL = None  # from the environment, or the app refuses to start
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True
    PREFERRED_URL_SCHEME = "https"
    # Without Redis the outbox is delivered by the `flask notify send` cron job, never by a web
    # worker: sending after the response still holds a sync worker (for the SMTP relay's time,
    # up to its timeout) and opens a second write transaction for every booking.
    # NOTIFY_SYNC=1 in the environment brings the synchronous sender back.
    NOTIFY_SYNC = False
    NOTIFY_SWEEP_SECONDS = 0.0  # cron's `flask notify send` or the RQ worker deliver


class TestingConfig(Config):
    TESTING = True
    PUBLIC_URL = "http://localhost"  # the test client's own host
    SECRET_KEY = "test-secret-key-not-for-production"  # noqa: S105
    IIN_HASH_KEY = "test-iin-hash-key-not-for-production"
    # Argon2 at its default cost makes every sign-in in a test take ~50 ms; keep the real
    # algorithm with a lower cost.
    ARGON2_TIME_COST = 1
    ARGON2_MEMORY_COST = 8192
    NOTIFY_SYNC = False  # tests deliver explicitly, and check what was delivered
    NOTIFY_SWEEP_SECONDS = 0.0


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "production": ProductionConfig,
    "testing": TestingConfig,
}


def local_secret(name: str) -> str:
    """A per-checkout secret stored in instance/, so `make run` needs no set-up but keeps sessions."""
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    path = INSTANCE_DIR / f"{name.lower()}.txt"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()
