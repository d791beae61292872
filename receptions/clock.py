"""The application's one notion of "now", so that a deployment or a test can pin it."""

from __future__ import annotations

from datetime import datetime

from flask import current_app, has_app_context

from .database import utcnow


def now() -> datetime:
    """Current UTC time, or the `FROZEN_NOW` setting when one is configured (tests, demos)."""
    if has_app_context():
        frozen = current_app.config.get("FROZEN_NOW")
        if frozen is not None:
            return frozen  # type: ignore[no-any-return]
    return utcnow()
