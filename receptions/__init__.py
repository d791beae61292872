"""Ashyq Esik: open-door days and citizen receptions at public institutions of Kazakhstan."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask, g, request
from flask.sessions import SecureCookieSessionInterface
from flask_babel import format_decimal
from flask_babel import lazy_gettext as _l
from itsdangerous import URLSafeTimedSerializer
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter, Map

from scheduling.zones import require_current_zone_data

from .config import CONFIGS, INSTANCE_DIR, Config, local_secret
from .database import (
    end_reads_without_transaction,
    ping_when_idle,
    refuse_writes_outside_transactions,
)
from .extensions import babel, csrf, db, limiter, login_manager, migrate
from .urls import public_url_problem

ROOT = Path(__file__).resolve().parent.parent

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def create_app(config: str | Mapping[str, Any] | None = None) -> Flask:
    """Build the application. `config` is a config name or a mapping of overrides."""
    require_current_zone_data()
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(INSTANCE_DIR),
    )
    overrides: Mapping[str, Any] = config if isinstance(config, Mapping) else {}
    name = (
        config
        if isinstance(config, str)
        else overrides.get("ENV_NAME", os.environ.get("ASHYQ_ENV", "development"))
    )
    app.config.from_object(CONFIGS[str(name)])
    app.config.update(Config.from_environment())
    app.config.update(overrides)
    _ensure_secrets(app, str(name))

    if app.config["PROXY_COUNT"]:
        count = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)  # type: ignore[method-assign]

    app.session_interface = KeptSignerSessionInterface()
    app.url_map.converters["int"] = RowIdConverter  # before any route is added
    _init_extensions(app)
    _register_blueprints(app)
    _limits_only_where_declared(app)
    _register_template_helpers(app)
    _register_cli(app)
    app.before_request(_refuse_nul_bytes)
    app.after_request(_security_headers)
    _keep_own_retry_after(app)

    from .errors import register_error_handlers
    from .notify import sweeper

    register_error_handlers(app)
    sweeper.install(app)
    from .logging_filters import install

    # "flask-limiter" is the name Flask-Limiter logs under (its breach lines carry the limit's key).
    if not app.debug and not app.testing:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
    install("werkzeug", "gunicorn.access", "gunicorn.error", "receptions", "flask-limiter")
    return app


ROW_ID_MAX = 2**31 - 1  # PostgreSQL's integer, the type of every id column


class RowIdConverter(IntegerConverter):
    """`<int:...>` in every route: a number no id column can hold does not match, so the answer
    is the ordinary 404 rather than the database's refusal (PostgreSQL's "integer out of range",
    SQLite's OverflowError past 2**63), which would be a 500."""

    def __init__(
        self,
        map: Map,
        fixed_digits: int = 0,
        min: int | None = None,
        max: int | None = ROW_ID_MAX,
        signed: bool = False,
    ) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


class KeptSignerSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the signer built once for the app's keys: Flask
    builds it twice a request (opening and saving), and its constructor serialises a test value."""

    _kept: tuple[Any, URLSafeTimedSerializer | None] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        kept = self._kept
        if kept is None or kept[0] != keys:
            kept = self._kept = (keys, super().get_signing_serializer(app))
        return kept[1]


def _ensure_secrets(app: Flask, name: str) -> None:
    for key in ("SECRET_KEY", "IIN_HASH_KEY"):
        if app.config.get(key):
            continue
        if name == "production":
            raise RuntimeError(f"{key} must be set in the environment for production")
        app.config[key] = local_secret(key)
    problem = public_url_problem(app.config.get("PUBLIC_URL"))
    if problem:
        raise RuntimeError(f"PUBLIC_URL {problem} (e.g. PUBLIC_URL=https://ashyq-esik.kz)")


def _init_extensions(app: Flask) -> None:
    from .i18n import install_template_gettext, select_locale
    from .models import User

    # A file cannot drop a connection; a server can, while its connections wait in the pool.
    server = not str(app.config.get("SQLALCHEMY_DATABASE_URI", "")).startswith("sqlite")
    if server:
        # The connection given back last goes out first (see ping_when_idle).
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
            "pool_use_lifo": True,
            **app.config["SQLALCHEMY_ENGINE_OPTIONS"],
        }
    db.init_app(app)
    if server:
        with app.app_context():
            ping_when_idle(db.engine, float(app.config["DATABASE_PING_AFTER_IDLE_S"]))
            refuse_writes_outside_transactions(db.engine)
        app.teardown_request(end_reads_without_transaction)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale, timezone_selector=lambda: "Asia/Almaty")
    install_template_gettext(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.sign_in"
    login_manager.login_message = _l("Please sign in to open this page.")
    login_manager.login_message_category = "info"
    # "basic": "strong" would also reset anonymous visitors' sessions on every request.
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def load_user(user_id: str) -> User | None:
        from .urls import whole_number

        number = whole_number(user_id)
        user = db.session.get(User, number) if number is not None else None
        return user if user is not None and user.active else None


def _register_blueprints(app: Flask) -> None:
    from .admin.views import bp as admin_bp
    from .auth.views import bp as auth_bp
    from .booking.views import bp as booking_bp
    from .institutions.views import bp as institutions_bp
    from .notify.views import bp as notify_bp
    from .public.views import bp as public_bp
    from .reports.views import bp as reports_bp
    from .schedules.views import bp as schedules_bp
    from .staff.views import bp as staff_bp
    from .visits.views import bp as visits_bp

    blueprints = (
        public_bp,
        auth_bp,
        institutions_bp,
        schedules_bp,
        booking_bp,
        notify_bp,
        visits_bp,
        reports_bp,
        staff_bp,
        admin_bp,
    )
    for blueprint in blueprints:
        app.register_blueprint(blueprint)


def _limits_only_where_declared(app: Flask) -> None:
    """Every rate limit here sits on the function it guards (`@limiter.limit`), and that function's
    wrapper checks it when called. Flask-Limiter's own before_request hook would look for limits
    once more on every request (a quarter of a health check's time) and find none: with no
    default, application, blueprint or meta limits it is taken out. Declaring one of those keeps
    it, and the limits then work as Flask-Limiter documents."""
    manager = limiter.limit_manager
    blueprint_limits = any(manager.blueprint_limits(app, name) for name in app.blueprints)
    if manager.default_limits or manager.application_limits or blueprint_limits:
        return
    if app.config.get("RATELIMIT_META") or getattr(limiter, "_meta_limits", None):
        return
    app.before_request_funcs[None].remove(limiter._check_request_limit)


def _register_template_helpers(app: Flask) -> None:
    from .i18n import (
        LANGUAGE_NAMES,
        MOMENT_PATTERN,
        current_language,
        localized,
        moment_filter,
        month_label,
        share_percent,
    )

    @app.context_processor
    def inject() -> dict[str, Any]:
        return {
            "current_language": current_language(),
            "language_names": LANGUAGE_NAMES,
            "localized": localized,
        }

    from .audit.labels import action_label, record_type_label
    from .booking.labels import accessibility_label, event_label, status_label
    from .schedules.queries import describe_schedule
    from .schedules.views import kind_labels

    time_format = moment_filter("time")
    datetime_format = moment_filter("datetime")
    app.jinja_env.filters.update(
        date=moment_filter("date"),
        datetime=datetime_format,
        moment=lambda value: datetime_format(value, MOMENT_PATTERN),
        number=format_decimal,
        percent=share_percent,
        time_short=lambda value: time_format(value, "HH:mm"),
        capitalize_first=lambda text: text[:1].upper() + text[1:],
        from_iso=datetime.fromisoformat,
        month_label=month_label,
    )
    app.jinja_env.globals.update(
        kind_label=lambda kind: kind_labels().get(kind, kind),
        describe=describe_schedule,
        webcal=lambda url: "webcal://" + url.split("://", 1)[1],
        event_label=event_label,
        accessibility_label=accessibility_label,
        status_label=status_label,
        audit_action_label=action_label,
        audit_record_type_label=record_type_label,
    )
    from .layout import site_header

    app.jinja_env.globals["site_header"] = site_header
    app.jinja_env.globals["g"] = g


def _register_cli(app: Flask) -> None:
    from .admin.cli import backup_cli, retention_cli
    from .demo.cli import demo_cli
    from .i18n.cli import i18n_cli
    from .notify.cli import notify_cli
    from .reports.cli import reports_cli
    from .schedules.cli import schedules_cli

    for group in (
        demo_cli,
        i18n_cli,
        notify_cli,
        schedules_cli,
        retention_cli,
        reports_cli,
        backup_cli,
    ):
        app.cli.add_command(group)


def _refuse_nul_bytes() -> None:
    """No text a person types contains NUL; PostgreSQL refuses it, so it never gets that far."""
    from flask import abort

    if "\x00" in request.path:  # /status/%00 reaches the database as a path argument
        abort(400)
    for values in (request.args, request.form):
        for value in values.values():
            if "\x00" in value:
                abort(400)


def _keep_own_retry_after(app: Flask) -> None:
    """Retry-After says what the page means: Flask-Limiter sets it on every answer of a limited
    view to when the citizen's window ends (up to an hour), which is right for a 429 but turns
    a 503's "5" into "3600" and puts the header on pages that asked for nothing. Every other
    answer keeps the header the app gave it, or none."""

    def note(response: Any) -> Any:  # runs before Flask-Limiter's hook (registered after it)
        g.own_retry_after = response.headers.get("Retry-After")
        return response

    def restore(response: Any) -> Any:  # runs last
        if response.status_code != 429:
            own = g.pop("own_retry_after", None)
            if own is None:
                response.headers.pop("Retry-After", None)
            else:
                response.headers["Retry-After"] = own
        return response

    app.after_request(note)
    app.after_request_funcs.setdefault(None, []).insert(0, restore)


def _security_headers(response: Any) -> Any:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    from flask import current_app

    if current_app.config.get("SESSION_COOKIE_SECURE"):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    return response
