"""Manage links and reference codes carry no personal data, and no access log (gunicorn's or
werkzeug's) ever shows a manage or set-password token or a signed answer link."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from receptions.auth.models import Role
from receptions.booking import services as booking_services
from tests.factories import make_iin, make_open_session, make_topic, make_user
from tests.hostile import book_over_http, booking_with_token

ROOT = Path(__file__).resolve().parents[2]
ALPHABET = booking_services.REFERENCE_ALPHABET
REFERENCE = re.compile(rf"^[A-Z0-9]{{2,3}}-[{ALPHABET}]{{6}}$")
TOKEN = re.compile(r"^[A-Za-z0-9_-]{43,}$")  # URL-safe base64 of at least 256 bits
one_database = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def test_manage_links_and_references_hold_no_personal_data(app):
    session = make_open_session(slots=4)
    topic = make_topic()
    seen = []
    for n, slot in enumerate(session.slots):
        client = app.test_client()
        iin, name, phone = make_iin(800 + n), f"Сәуле Құпиякова {n}", f"+7701555{n:04d}"
        token, booking = book_over_http(
            client,
            slot,
            topic,
            iin=iin,
            full_name=name,
            phone=phone,
            email=f"saule{n}@example.kz",
            question="Менің жеке сұрағым туралы",
        )
        assert REFERENCE.match(booking.reference), booking.reference
        assert TOKEN.match(token), token
        assert booking.manage_token_hash != token  # only a hash is stored
        status = client.get(f"/status/{booking.reference}").get_data(as_text=True)
        manage = client.get(f"/m/{token}").get_data(as_text=True)
        personal = [iin, iin[-4:], name, phone, phone[-7:], f"saule{n}@", "жеке сұрағым"]
        for secret in personal:
            assert secret not in token and secret not in booking.reference, secret
            assert secret not in status, secret
        assert token not in status
        assert iin not in manage and phone not in manage  # shown masked only
        seen.append((token, booking.reference))
    assert len({t for t, _ in seen}) == len({r for _, r in seen}) == len(seen)


def test_reference_codes_are_random_over_their_whole_alphabet(app):
    codes = [booking_services._new_reference("TST") for _ in range(400)]
    assert len(set(codes)) == len(codes)
    assert math.log2(len(ALPHABET)) * 6 >= 29  # with the status page's rate limit
    used = {char for code in codes for char in code.split("-")[1]}
    assert used == set(ALPHABET)
    assert not set(ALPHABET) & set("01OIL")  # nothing a reader can confuse


def _secret_urls(app) -> tuple[list[str], list[str]]:
    """Paths with a manage or set-password token or a signed answer link in them, and the
    secrets."""
    from receptions.auth.services import issue_password_token
    from receptions.booking.answer_links import Purpose, answer_link
    from receptions.extensions import db

    session = make_open_session(slots=1)
    booking, manage = booking_with_token(session.slots[0], status="attended")
    invite = issue_password_token(make_user(Role.staff, password=None))
    db.session.commit()
    with app.app_context():
        rate, resolved = (answer_link(booking.id, purpose) for purpose in Purpose)
    paths = [
        f"/m/{manage}",
        f"/m/{manage}?new=1",
        f"/m/{manage}/booking.ics",
        f"/m/{manage}/cancel",
        f"/auth/set-password/{invite}",
        f"/feedback/{rate}",
        f"/resolved/{resolved}",
    ]
    return paths, [manage, invite, rate, resolved]


def _get(base: str, path: str, referer: str = "") -> None:
    request = urllib.request.Request(base + path, headers={"Referer": referer} if referer else {})
    with contextlib.suppress(urllib.error.HTTPError):  # only the log line matters here
        urllib.request.urlopen(request, timeout=10).read()


@one_database
def test_werkzeug_access_log_never_shows_a_token(app, caplog):
    paths, tokens = _secret_urls(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            for path in paths:
                _get(base, path, referer=base + paths[0])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert len(lines) >= len(paths)
    assert [line for line in lines if any(t in line for t in tokens)] == []
    secret_paths = ("/m/", "set-password", "/feedback/", "/resolved/")
    assert all("[redacted]" in line for line in lines if any(p in line for p in secret_paths))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@one_database
@pytest.mark.realtime  # a real gunicorn, whose timers follow the real clock
def test_gunicorn_access_log_never_shows_a_token(app, db_url, tmp_path):
    """The real gunicorn with the shipped gunicorn.conf.py, serving the test's database."""
    paths, tokens = _secret_urls(app)
    port = _free_port()
    env = {
        **os.environ,
        "ASHYQ_ENV": "testing",
        "DATABASE_URL": db_url,
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
    }
    log = (tmp_path / "gunicorn.log").open("w+")
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(
        [str(gunicorn), "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None, "gunicorn exited"
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        for path in paths:
            _get(base, path, referer=base + paths[0])
    finally:
        server.terminate()
        server.wait(timeout=30)
    log.seek(0)
    text = log.read()
    access = [line for line in text.splitlines() if '"GET ' in line]
    assert len(access) >= len(paths) + 1, text
    assert [line for line in text.splitlines() if any(t in line for t in tokens)] == []
    assert sum("[redacted]" in line for line in access) >= len(paths)


@one_database
def test_a_new_secret_key_signs_new_sessions_and_the_old_one_stays_a_fallback(app):
    """The session signer is built once for the app's keys (KeptSignerSessionInterface): a
    rotated key is used at once, a session signed with the old key is read while that key is
    listed in SECRET_KEY_FALLBACKS, and refused once it is not."""
    from flask import session

    with app.test_request_context("/"):
        session["lang"] = "en"
        interface = app.session_interface
        old = interface.get_signing_serializer(app).dumps(dict(session))
        assert interface.get_signing_serializer(app) is interface.get_signing_serializer(app)
    app.secret_key, previous = "rotated-" + "k" * 32, app.secret_key
    app.config["SECRET_KEY_FALLBACKS"] = [previous]
    client = app.test_client()
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], old)
    with client:
        client.get("/healthz")
        assert session.get("lang") == "en"
    app.config["SECRET_KEY_FALLBACKS"] = []
    client = app.test_client()
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], old)
    with client:
        client.get("/healthz")
        assert session.get("lang") is None
    with app.test_request_context("/"):
        fresh = app.session_interface.get_signing_serializer(app).dumps({"lang": "kk"})
    # Signed with the rotated key: Flask's own interface, built from the keys as they are now,
    # reads it; built from the old key alone, it refuses it.
    from flask.sessions import SecureCookieSessionInterface
    from itsdangerous import BadSignature

    assert SecureCookieSessionInterface().get_signing_serializer(app).loads(fresh) == {"lang": "kk"}
    app.secret_key = previous
    with pytest.raises(BadSignature):
        SecureCookieSessionInterface().get_signing_serializer(app).loads(fresh)
