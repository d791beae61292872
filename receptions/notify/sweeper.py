"""Outside production: a thread that delivers whatever is pending and due every few seconds.

Right after a change its messages are sent from the response's close callback (NOTIFY_SYNC,
`deliver_after_commit`). Werkzeug's development server does not close a response whose client
reset the connection as soon as it had read it: draining the socket raises ConnectionResetError
before `close()` is reached, so the callback never runs and the messages stay pending, never
tried; nor does anything retry, in development, a message that failed once (cron's
`flask notify send` does that in production). This sender is that safety net: started with the
first request in the process that serves, off in production and in tests (NOTIFY_SWEEP_SECONDS=0).
"""

from __future__ import annotations

import logging
import os
import threading
import time

from flask import Flask
from sqlalchemy import select

from ..clock import now as clock_now
from ..extensions import db
from .models import DeliveryStatus, Notification
from .services import send_due

log = logging.getLogger(__name__)


def install(app: Flask) -> None:
    """Start the sender with the app's first request, where the settings ask for it: messages
    sent from the web process (NOTIFY_SYNC, no Redis) and NOTIFY_SWEEP_SECONDS above zero."""
    seconds = float(app.config.get("NOTIFY_SWEEP_SECONDS") or 0)
    if seconds <= 0 or not app.config.get("NOTIFY_SYNC") or app.config.get("REDIS_URL"):
        return
    lock = threading.Lock()
    started_in: list[int] = []  # the process it runs in: a forked child starts its own

    @app.before_request
    def _start_sender() -> None:
        if started_in and started_in[-1] == os.getpid():
            return
        with lock:
            if started_in and started_in[-1] == os.getpid():
                return
            threading.Thread(
                target=_deliver_every, args=(app, seconds), name="notify-sweeper", daemon=True
            ).start()
            started_in.append(os.getpid())


def _anything_due() -> bool:
    due = select(Notification.id).where(
        Notification.status == DeliveryStatus.pending.value,
        Notification.next_attempt_at <= clock_now(),
    )
    return db.session.scalar(due.limit(1)) is not None


def _deliver_every(app: Flask, seconds: float) -> None:
    while True:
        time.sleep(seconds)
        try:
            with app.app_context():
                # A read first: send_due's write transaction would take SQLite's write lock
                # every few seconds for nothing.
                if _anything_due():
                    counts = send_due()
                    log.info("pending messages delivered by the development sender: %s", counts)
        except Exception:
            log.warning("the development sender could not deliver the outbox", exc_info=True)
