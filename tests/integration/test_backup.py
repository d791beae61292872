"""A backup restored into a fresh database has the same rows and checksums, on both backends."""

from __future__ import annotations

from receptions import create_app
from receptions.admin.backup import create_backup, restore_backup, table_fingerprints
from receptions.extensions import db
from tests.conftest import app_settings, migrate_to_head
from tests.factories import make_booking, make_open_session, make_topic


def test_backup_restores_into_a_fresh_database(app, db_url, backend, tmp_path, request):
    session = make_open_session(slots=2)
    make_booking(session.slots[0], topic=make_topic())
    before = table_fingerprints()
    backup = create_backup(db_url, tmp_path / "backup.bin")

    if backend == "sqlite":
        fresh_url = f"sqlite:///{tmp_path / 'restored.sqlite3'}"
    else:
        server = request.getfixturevalue("postgres_server")
        fresh_url = server.create("restore")
        request.addfinalizer(lambda: server.drop(fresh_url))
        migrate_to_head(fresh_url)  # restore also works over an existing schema (--clean)
    restore_backup(backup, fresh_url)

    restored = create_app(app_settings(fresh_url))
    with restored.app_context():
        after = table_fingerprints()
        db.session.remove()
        db.engine.dispose()
    assert after == before
    assert after["booking"][0] == 1 and after["slot"][0] == 2
