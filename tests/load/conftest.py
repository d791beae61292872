"""Short load and fault runs against real gunicorn servers (`benchmarks/faults.py`), marked `load`."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.harness import PrivateCluster
from tests.conftest import skip_unless_ci

HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "load: short load and fault runs (in `make test`; figures in benchmarks/)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.load)


@pytest.fixture(scope="session")
def private_postgresql() -> None:
    """A private PostgreSQL cluster can be made (the scenario makes and removes its own)."""
    reason = PrivateCluster.unavailable()
    if reason:
        skip_unless_ci(reason)
