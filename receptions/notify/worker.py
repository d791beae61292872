"""RQ integration: when REDIS_URL is set, delivery runs in `rq worker notifications`."""

from __future__ import annotations

from functools import cache
from typing import Any

QUEUE = "notifications"


@cache
def _redis(redis_url: str) -> Any:
    """One client (and connection pool) per process: a new one per booking meant a new TCP
    connection per booking. redis-py's pool notices a fork and starts afresh in the child."""
    from redis import Redis

    return Redis.from_url(redis_url)


def enqueue_delivery(redis_url: str, ids: list[int]) -> None:
    from rq import Queue

    Queue(QUEUE, connection=_redis(redis_url)).enqueue(
        "receptions.notify.worker.deliver", ids, retry=None, job_timeout=120
    )


def deliver(ids: list[int] | None = None) -> dict[str, int]:
    """The job an RQ worker runs: build the app from the environment and send what is due."""
    from receptions import create_app

    from .services import send_due

    app = create_app()
    with app.app_context():
        return send_due(ids=ids)
