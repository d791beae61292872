"""receptions.access_log prints the lines gunicorn's own logger prints, for any format."""

from __future__ import annotations

import datetime
import logging
from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger, SafeAtoms

from receptions.access_log import AccessLogger, LazyAtoms
from receptions.logging_filters import RedactSecrets

PROJECT_FORMAT = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
EVERY_FIELD = (
    '%(h)s %(l)s %(u)s "%(r)s" %(s)s %(m)s %(U)s %(q)s %(H)s %(b)s %(B)s "%(f)s" "%(a)s" '
    "%(T)s %(D)s %(M)s %(L)s %(p)s %({user-agent}i)s %({X-Missing}i)s %({content-type}o)s "
    "%(nothing)s"
)


def _request(path: str = "/m/Abcdefghijklmnopqrstuv?new=1", sent: int | None = 5120):
    environ = {
        "REMOTE_ADDR": "10.0.0.7",
        "REQUEST_METHOD": "POST",
        "RAW_URI": path,
        "PATH_INFO": path.split("?")[0],
        "QUERY_STRING": "new=1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_REFERER": 'https://example.kz/"quoted"',
        "HTTP_USER_AGENT": "ashyq-test",
    }
    req = SimpleNamespace(headers=[("User-Agent", "ashyq-test"), ("Cookie", "session=x")])
    resp = SimpleNamespace(
        status="303 SEE OTHER", sent=sent, headers=[("Content-Type", "text/html")]
    )
    return resp, req, environ, datetime.timedelta(seconds=1, microseconds=234567)


@pytest.mark.parametrize("line_format", [PROJECT_FORMAT, EVERY_FIELD])
@pytest.mark.parametrize("sent", [5120, 0, None])
def test_the_same_line_as_gunicorn(line_format: str, sent: int | None) -> None:
    config = Config()
    config.set("access_log_format", line_format)
    ours, theirs = AccessLogger(config), Logger(config)
    resp, req, environ, took = _request(sent=sent)
    expected = line_format % SafeAtoms(theirs.atoms(resp, req, environ, took))
    assert line_format % LazyAtoms(ours, resp, req, environ, took) == expected


def test_the_logged_line_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    config = Config()
    config.set("access_log_format", PROJECT_FORMAT)
    config.set("accesslog", "-")
    logger = AccessLogger(config)
    logger.access_log.addFilter(RedactSecrets())
    logger.access_log.propagate = True
    resp, req, environ, took = _request()
    with caplog.at_level(logging.INFO, logger="gunicorn.access"):
        logger.access(resp, req, environ, took)
    assert set(caplog.messages) == {'10.0.0.7 "POST /m/[redacted]?new=1 HTTP/1.1" 303 5120 1234ms'}


def test_records_of_child_loggers_are_redacted_by_the_root_handlers():
    """A filter on the `receptions` logger does not see `receptions.errors`' records: the root
    logger's handlers, where they end up, redact them."""
    import io
    import logging

    from receptions.logging_filters import install

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    child = logging.getLogger("receptions.errors")
    level = child.level
    try:
        install("receptions")
        child.setLevel(logging.WARNING)
        child.warning("failed on %s", "/m/AbCdEf0123456789_-xyz and iin:0a1b2c3d4e5f")
    finally:
        root.removeHandler(handler)
        child.setLevel(level)
    printed = stream.getvalue()
    assert "AbCdEf0123456789" not in printed and "0a1b2c3d4e5f" not in printed
    assert "/m/[redacted]" in printed and "iin:[redacted]" in printed
