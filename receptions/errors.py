"""Domain exceptions and the one place that turns errors into friendly pages in the user's language."""

from __future__ import annotations

import logging
import math
import time
from datetime import timedelta

from flask import Flask, jsonify, render_template, request
from flask_babel import format_timedelta
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from .database import close_request_session, rollback_request_session
from .extensions import limiter

log = logging.getLogger(__name__)


class DomainError(Exception):
    """A rule of the product was broken; the message is shown to the user."""

    status_code = 400
    message = _l("The request could not be processed.")

    def __init__(self, message: str | None = None) -> None:
        text = message or str(self.message)  # translated once, in the reader's language
        super().__init__(text)
        self.user_message = text


class NotInScope(DomainError):
    """The record exists but lies outside the user's institution, district or region.

    Answered as 404 so that nobody learns what other scopes hold.
    """

    status_code = 404
    message = _l("The page you asked for does not exist or is not available to you.")


class Forbidden(DomainError):
    status_code = 403
    message = _l("Your account does not have access to this page.")


class Conflict(DomainError):
    status_code = 409
    message = _l("Someone else changed this record in the meantime. Reload the page and try again.")


class InvalidEntry(DomainError):
    """What the user typed breaks a rule; `problems` maps each form field to its message, so that
    the page the form came from is shown again with the errors next to their fields (see
    `receptions.forms.show_refusal`)."""

    status_code = 422
    message = _l("Please check what you entered and try again.")

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__(" ".join(problems.values()))
        self.problems = problems


TITLES = {
    400: _l("The request could not be understood"),
    403: _l("Access denied"),
    404: _l("Page not found"),
    405: _l("This action is not allowed here"),
    409: _l("This cannot be done"),
    410: _l("This link has expired"),
    413: _l("The request is too large"),
    422: _l("Please check what you entered"),
    429: _l("Too many requests"),
    500: _l("Something went wrong on our side"),
    503: _l("The service is temporarily unavailable"),
}

MESSAGES = {
    400: _l("Please check what you entered and try again."),
    403: _l("Your account does not have access to this page."),
    404: _l("The page you asked for does not exist or is not available to you."),
    405: _l("This address does not accept this kind of request."),
    409: _l("Someone else changed this record in the meantime. Reload the page and try again."),
    410: _l("This link is no longer valid."),
    413: _l("The request is too large."),
    422: _l("Please check what you entered and try again."),
    500: _l("We have been notified. Please try again in a few minutes."),
    503: _l("The database is not reachable right now. Please try again shortly."),
}


def error_response(status: int, message: str | None = None, headers: dict[str, str] | None = None):
    rollback_request_session()
    text = message or str(MESSAGES.get(status, MESSAGES[500]))
    title = str(TITLES.get(status, TITLES[500]))
    if request.accept_mimetypes.best == "application/json" or request.path.startswith("/api/"):
        response = jsonify(error=title, message=text, status=status)
    else:
        response = render_template(
            "errors/error.html", status=status, title=title, message=text, plain_page=status >= 500
        )
    return response, status, headers or {}


def register_error_handlers(app: Flask) -> None:
    # Registered after db.init_app, so it runs before Flask-SQLAlchemy's own teardown (teardowns
    # run in reverse order) and leaves that one nothing to close.
    app.teardown_appcontext(close_request_session)

    @app.errorhandler(DomainError)
    def domain_error(error: DomainError):
        return error_response(error.status_code, error.user_message)

    @app.errorhandler(CSRFError)
    def csrf_error(_error: CSRFError):
        return error_response(
            400,
            _("The form has expired or was sent from another page. Please reload and try again."),
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        status = error.code or 500
        headers = {}
        if status == 429:
            return _too_many_requests()
        if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
        return error_response(status, headers=headers)

    @app.errorhandler(OperationalError)
    def database_unavailable(error: OperationalError):
        log.error("database unavailable: %s", type(error.orig).__name__)
        return error_response(503, headers={"Retry-After": "5"})

    @app.errorhandler(Exception)
    def internal_error(error: Exception):
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return error_response(503, headers={"Retry-After": "5"})
        log.exception("unhandled error on %s %s", request.method, request.endpoint)
        return error_response(500)


def _too_many_requests():  # type: ignore[no-untyped-def]
    """The 429 says how long to wait: until the window of the limit that was reached ends (an
    hour at most for a booking), as Retry-After does; in whole minutes, rounded up, past the
    first minute."""
    limit = limiter.current_limit
    seconds = max(1, math.ceil(limit.reset_at - time.time())) if limit is not None else 60
    shown = seconds if seconds < 60 else math.ceil(seconds / 60) * 60
    when = format_timedelta(timedelta(seconds=shown), add_direction=True)
    message = _("You have made too many requests. Please try again %(when)s.", when=when)
    return error_response(429, message, headers={"Retry-After": str(seconds)})
