"""Keep secrets and personal data out of logs: manage tokens, answer links and citizens' limit
keys are redacted."""

from __future__ import annotations

import logging
import re

# A manage token, an invitation's token, a signed answer link (booking.answer_links, whose
# parts are joined by dots).
SECRET_PATHS = re.compile(r"(/m/|/auth/set-password/|/feedback/|/resolved/)[A-Za-z0-9_.\-]{8,}")
# The per-IIN booking limit's key is "iin:" and the keyed IIN hash, the value booking.iin_hash
# holds; Flask-Limiter logs the key of every limit it finds exceeded.
CITIZEN_LIMIT_KEYS = re.compile(r"\b(iin:)[^\s()\[\]]+")


def redact(text: str) -> str:
    text = SECRET_PATHS.sub(r"\1[redacted]", text)
    return CITIZEN_LIMIT_KEYS.sub(r"\1[redacted]", text) if "iin:" in text else text


class RedactSecrets(logging.Filter):
    """Formats a record's message once, redacted, before any handler sees it.

    gunicorn's access records carry a dict of every request and response header as arguments;
    formatting first and redacting the one line is what a handler would print, for a regular
    expression over one string instead of over every value of that dict.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = redact(record.getMessage())
            record.args = None
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def _add_once(filterer: logging.Filterer) -> None:
    if not any(isinstance(f, RedactSecrets) for f in filterer.filters):
        filterer.addFilter(RedactSecrets())


def install(*logger_names: str) -> None:
    """Redact what these loggers log themselves, and everything the root logger's handlers
    print: a logger's filter does not see its children's records (receptions.errors,
    receptions.database, ...), which reach the root's handlers by propagation."""
    for name in logger_names:
        _add_once(logging.getLogger(name))
    for handler in logging.getLogger().handlers:
        _add_once(handler)
