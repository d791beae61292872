"""RQ integration: when REDIS_URL is set, delivery runs in `rq worker notifications`."""

from __future__ import annotations

QUEUE = "notifications"


def enqueue_delivery(redis_url: str, ids: list[int]) -> None:
    from redis import Redis
    from rq import Queue

    Queue(QUEUE, connection=Redis.from_url(redis_url)).enqueue(
        "receptions.notify.worker.deliver", ids, retry=None, job_timeout=120
    )


def deliver(ids: list[int] | None = None) -> dict[str, int]:
    """The job an RQ worker runs: build the app from the environment and send what is due."""
    from receptions import create_app

    from .services import send_due

    app = create_app()
    with app.app_context():
        return send_due(ids=ids)
