"""Backups: SQLite through its online backup API, PostgreSQL through pg_dump / pg_restore."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import URL, make_url

from ..extensions import db


def _libpq_url(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def create_backup(url_text: str, output: Path) -> Path:
    """Write a consistent copy of the database while the service keeps running."""
    url = make_url(url_text)
    output.parent.mkdir(parents=True, exist_ok=True)
    if url.get_backend_name() == "sqlite":
        source = sqlite3.connect(url.database or "")
        target = sqlite3.connect(output)
        try:
            source.backup(target)  # page by page, consistent even with writers
        finally:
            target.close()
            source.close()
    elif url.get_backend_name() == "postgresql":
        subprocess.run(
            ["pg_dump", "--format=custom", "--no-owner", "--file", str(output), _libpq_url(url)],
            check=True,
        )
    else:
        raise ValueError(f"no backup method for {url.get_backend_name()}")
    return output


def restore_backup(backup: Path, url_text: str) -> None:
    """Restore into the (empty or disposable) database at `url_text`."""
    url = make_url(url_text)
    if url.get_backend_name() == "sqlite":
        shutil.copyfile(backup, url.database or "")
    elif url.get_backend_name() == "postgresql":
        subprocess.run(
            [
                "pg_restore",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--exit-on-error",
                "--dbname",
                _libpq_url(url),
                str(backup),
            ],
            check=True,
        )
    else:
        raise ValueError(f"no restore method for {url.get_backend_name()}")


def table_fingerprints() -> dict[str, tuple[int, str]]:
    """Row count and a checksum of every table's rows in primary-key order."""
    fingerprints = {}
    for table in db.metadata.sorted_tables:
        rows = db.session.execute(select(table).order_by(*table.primary_key.columns)).all()
        digest = hashlib.sha256()
        for row in rows:
            digest.update(repr(tuple(_plain(v) for v in row)).encode())
        fingerprints[table.name] = (len(rows), digest.hexdigest())
    return fingerprints


def _plain(value: object) -> object:
    # Both backends return the same Python values, except that dicts from JSON keep key order.
    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    return value
