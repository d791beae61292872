"""Citizen booking: book, double submission, limits, bad input, manage link, status page."""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import vobject
from sqlalchemy import func, inspect, select, text

from receptions.auth.models import Role
from receptions.booking import services, views
from receptions.booking.models import Booking, Feedback, StatusEvent, WaitlistEntry
from receptions.extensions import db
from receptions.notify.models import Notification
from receptions.schedules.models import ScheduledSession, Slot
from tests.conftest import csrf_from, sign_in
from tests.factories import (
    PASSWORD,
    make_district,
    make_iin,
    make_institution,
    make_open_session,
    make_region,
    make_topic,
    make_user,
)
from tests.hostile import booking_with_token, outcome_long_ago
from tests.integration.test_migrations import empty_database  # noqa: F401 (a fixture)

IIN = make_iin(1)


@pytest.fixture
def topic(app):
    return make_topic(name_ru="ЖКХ", name_kk="ТҮКШ", name_en="Housing")


@pytest.fixture
def session(app):
    return make_open_session(slots=3)


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def add_session(first: ScheduledSession, *, hours_later: float, slots: int = 3):
    """Another session of the same schedule, `hours_later` after `first` (negative: before)."""
    start = first.starts_at + timedelta(hours=hours_later)
    minutes = first.schedule.slot_minutes
    session = ScheduledSession(
        schedule_id=first.schedule_id,
        institution_id=first.institution_id,
        kind=first.kind,
        local_date=start.astimezone(ZoneInfo(first.institution.district.region.timezone)).date(),
        starts_at=start,
        ends_at=start + timedelta(minutes=minutes * slots),
        status="planned",
        walk_in_places=0,
    )
    session.slots = [
        Slot(
            starts_at=start + timedelta(minutes=minutes * i),
            ends_at=start + timedelta(minutes=minutes * (i + 1)),
            capacity=first.slots[0].capacity,
            booked=0,
        )
        for i in range(slots)
    ]
    db.session.add(session)
    db.session.commit()
    return session


def book_form(client, slot_id, lang="ru"):
    page = client.get(f"/book/{slot_id}", headers={"Accept-Language": lang})
    assert page.status_code == 200, page.status_code
    html = page.get_data(as_text=True)
    return csrf_from(html), form_key(html)


def form_key(html: str) -> str:
    return re.search(r'name="idempotency_key" type="hidden" value="([^"]+)"', html).group(1)


def book(client, slot_id, topic, *, lang="ru", meanwhile=None, **overrides):
    """Open the form and send it; `meanwhile` runs between the two (a change the citizen does
    not see)."""
    csrf, key = book_form(client, slot_id, lang)
    if meanwhile is not None:
        meanwhile()
    data = {
        "csrf_token": csrf,
        "idempotency_key": key,
        "full_name": "Сәуле Ержанқызы",
        "iin": IIN,
        "phone": "8 (701) 123-45-67",
        "email": "saule@example.kz",
        "locale": lang,
        "topic_id": str(topic.id),
        "question": "Когда отремонтируют отопление в подъезде?",
        "accessibility": ["wheelchair"],
        "consent": "y",
        **overrides,
    }
    data = {k: v for k, v in data.items() if v is not None}
    return client.post(f"/book/{slot_id}", data=data, headers={"Accept-Language": lang}), data


def test_citizen_books_a_slot_and_gets_a_private_link(client, session, topic):
    slot = session.slots[0]
    response, _ = book(client, slot.id, topic)
    assert response.status_code == 303
    assert re.fullmatch(r"/m/[A-Za-z0-9_\-]{43}\?new=1", response.headers["Location"])
    booking = db.session.scalars(select(Booking)).one()
    assert re.fullmatch(r"[A-Z0-9]{3}-[2-9A-HJKMNP-Z]{6}", booking.reference)
    assert booking.phone == "+77011234567"
    assert booking.iin_last4 == IIN[-4:] and IIN not in booking.iin_hash
    assert len(booking.iin_hash) == 64 and len(booking.manage_token_hash) == 64
    db.session.expire_all()
    assert db.session.get(Slot, slot.id).booked == 1
    assert [e.kind for e in db.session.scalars(select(StatusEvent))] == ["booked"]
    channels = sorted(n.channel for n in db.session.scalars(select(Notification)))
    assert channels == ["email", "sms"]

    manage = client.get(response.headers["Location"], headers={"Accept-Language": "ru"})
    page = manage.get_data(as_text=True)
    assert booking.reference in page
    assert IIN not in page and "1234567" not in page  # masked on screen
    assert IIN[-4:] in page and "+7 701 ••• •• 67" in page
    assert 'name="robots" content="noindex' in page


@pytest.mark.parametrize("email", ["saule@example.kz", ""])
def test_a_booking_stores_the_same_rows_on_every_backend(client, session, topic, email):
    """On PostgreSQL the booking, its event and its messages are written by one statement whose
    inserts get no column defaults of their own: every column is what the model's inserts give."""
    response, _ = book(client, session.slots[0].id, topic, email=email)
    assert response.status_code == 303
    db.session.expire_all()
    booking = db.session.scalars(select(Booking)).one()
    assert (booking.channel, booking.status, booking.email) == ("online", "booked", email)
    assert booking.accessibility == ["wheelchair"] and booking.accessibility_note == ""
    assert booking.created_at == booking.booked_at == booking.consent_at
    assert booking.updated_at is not None and booking.reminder_sent_at is None
    events = db.session.scalars(select(StatusEvent)).all()
    assert [(e.booking_id, e.kind, e.details, e.at) for e in events] == [
        (booking.id, "booked", {}, booking.created_at)
    ]
    messages = db.session.scalars(select(Notification).order_by(Notification.channel)).all()
    expected = [("sms", "+77011234567")] + ([("email", email)] if email else [])
    assert sorted((m.channel, m.recipient) for m in messages) == sorted(expected)
    for message in messages:
        assert (message.booking_id, message.template, message.locale) == (
            booking.id,
            "booking_confirmed",
            "ru",
        )
        assert (message.status, message.attempts, message.last_error) == ("pending", 0, "")
        assert timedelta(0) <= message.created_at - booking.created_at < timedelta(minutes=1)
        assert message.next_attempt_at is not None
        assert message.payload["reference"] == booking.reference
        assert message.payload["manage_url"].endswith(response.headers["Location"].split("?")[0])


def test_status_page_shows_history_and_no_personal_data(client, session, topic):
    book(client, session.slots[0].id, topic)
    booking = db.session.scalars(select(Booking)).one()
    page = client.get(f"/status/{booking.reference.lower()}", headers={"Accept-Language": "en"})
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "Booked" in text
    for private in ("Сәуле", IIN, IIN[-4:], "701", "отопление", "saule@"):
        assert private not in text
    lookup = client.get(f"/status?reference={booking.reference}")
    assert lookup.status_code == 302
    assert client.get("/status/ATY-XXXXXX").status_code == 404


CYRILLIC_LOOKALIKES = str.maketrans("ABEKMHOPCTYX", "АВЕКМНОРСТУХ")
FULLWIDTH = {ord(c): ord(c) + 0xFEE0 for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"}


def test_a_reference_typed_any_plausible_way_leads_to_its_status_page(client, session, topic):
    book(client, session.slots[0].id, topic)
    reference = db.session.scalars(select(Booking.reference)).one()
    prefix, code = reference.split("-")
    typed = [
        reference,
        f"  {reference.lower()} ",
        f"{prefix} {code}",
        prefix + code.lower(),
        f"{prefix} – {code}",  # an en dash, as a phone's keyboard may put it
        f"{prefix}\u2011{code}",  # a non-breaking hyphen, as a copied SMS may have it
        reference.translate(CYRILLIC_LOOKALIKES).lower(),  # a Russian or Kazakh keyboard layout
        reference.translate(FULLWIDTH),  # full-width letters and digits of an East Asian input
    ]
    for typed_text in typed:
        lookup = client.get("/status", query_string={"reference": typed_text})
        assert (lookup.status_code, lookup.headers.get("Location")) == (
            302,
            f"/status/{reference}",
        ), typed_text
        page = client.get(lookup.headers["Location"], headers={"Accept-Language": "en"})
        assert page.status_code == 200 and reference in page.get_data(as_text=True), typed_text


@pytest.mark.parametrize(
    ("language", "message"),
    [
        ("kk", "Мұндай нөмірі бар жазылу жоқ. Әріптер мен цифрларды тексеріңіз."),
        ("ru", "Записи с таким номером нет. Проверьте буквы и цифры."),
        ("en", "No booking has this reference. Check the letters and digits."),
    ],
)
def test_a_lookup_that_cannot_be_a_reference_is_answered_on_the_form(client, language, message):
    """Nothing that cannot be a reference is sent on to /status/<reference>: '..' or '/' would
    take the browser to another page, and the others to a page that only says 'not found'."""
    for typed_text in (
        "/",
        "..",
        "../..",
        "ATY/7K3M9Q",
        "%2F",
        "ATY-7K3M9",  # a character short
        "ATY-7K3M9QQ",
        "ATY-0O1IL5",  # letters and digits no reference has
        "ꙮ",
        "X" * 500,
        "' OR 1=1 --",
    ):
        lookup = client.get(
            "/status", query_string={"reference": typed_text}, headers={"Accept-Language": language}
        )
        page = lookup.get_data(as_text=True)
        assert (lookup.status_code, lookup.headers.get("Location")) == (422, None), typed_text
        assert message in page, typed_text
    for blank in ("", "   "):
        empty = client.get(
            "/status", query_string={"reference": blank}, headers={"Accept-Language": language}
        )
        assert empty.status_code == 422 and message not in empty.get_data(as_text=True)


def test_double_submission_of_the_same_form_creates_one_booking(client, session, topic):
    first, data = book(client, session.slots[0].id, topic)
    second = client.post(f"/book/{session.slots[0].id}", data=data)
    assert second.status_code == 303
    assert second.headers["Location"] == first.headers["Location"]
    assert count(Booking) == 1
    db.session.expire_all()
    assert db.session.get(Slot, session.slots[0].id).booked == 1


@pytest.mark.parametrize(
    "key", ["a" * 20, "x" * 40 + ".AAAAAAAAAAAAAAAA", "issued-elsewhere"], ids=str.__len__
)
def test_a_form_key_the_service_did_not_issue_is_refused(app, client, session, topic, key):
    """A client cannot choose the key: a shared constant would hand out another's booking."""
    if key == "issued-elsewhere":  # by an installation with another secret
        ours = app.config["SECRET_KEY"]
        app.config["SECRET_KEY"] = "another-installation-secret"
        key = services.new_idempotency_key()
        app.config["SECRET_KEY"] = ours
    response, _ = book(client, session.slots[0].id, topic, lang="en", idempotency_key=key)
    assert response.status_code == 400
    assert "reload" in response.get_data(as_text=True)
    assert count(Booking) == 0
    db.session.expire_all()
    assert db.session.get(Slot, session.slots[0].id).booked == 0


def test_one_active_booking_per_institution_per_month(client, session, topic):
    assert book(client, session.slots[0].id, topic)[0].status_code == 303
    again, _ = book(client, session.slots[1].id, topic)
    assert again.status_code == 409
    assert count(Booking) == 1
    elsewhere = make_open_session(make_institution())
    assert book(client, elsewhere.slots[0].id, topic)[0].status_code == 303


def test_over_the_months_limit_the_form_comes_back_with_what_to_do(client, session, topic):
    """A second booking there that month (Back after booking, then another time) gets the form
    again as it was sent (409), saying what to do instead; the booking held is named to a sender
    who gave its IIN and phone, never with its manage link, and the IIN is only in its field."""
    first, _ = book(client, session.slots[0].id, topic)
    reference = db.session.scalars(select(Booking)).one().reference
    again, _ = book(client, session.slots[1].id, topic, lang="en", full_name="Сәуле Е.")
    assert again.status_code == 409
    page = again.get_data(as_text=True)
    assert "You already have a booking at this institution this month" in page
    assert reference in page and f'href="/status/{reference}"' in page
    assert "“Move to another time”" in page and 'role="alert"' in page
    assert 'value="Сәуле Е."' in page and "Когда отремонтируют отопление" in page
    assert page.count(IIN) == 1 and re.search(rf'<input [^>]*name="iin"[^>]*value="{IIN}"', page)
    assert "/m/" not in page and first.headers["Location"] not in page
    assert count(Booking) == 1


def test_over_the_limit_a_sender_without_the_phone_is_not_told_the_booking(client, session, topic):
    """Someone who knows a citizen's IIN but not the phone the booking was made with learns
    nothing more than that the limit is reached."""
    book(client, session.slots[0].id, topic)
    reference = db.session.scalars(select(Booking)).one().reference
    stranger, _ = book(client, session.slots[1].id, topic, lang="en", phone="+77019998877")
    assert stranger.status_code == 409
    page = stranger.get_data(as_text=True)
    assert "You already have a booking at this institution this month" in page
    assert reference not in page and "/status/" not in page
    assert count(Booking) == 1


def test_back_to_the_form_of_a_time_just_booked_says_the_citizen_booked_it(app, client, topic):
    """Back to the form of the time this browser has just taken: the page says it is their own
    booking, not that the time is taken; another browser is told it is taken."""
    session = make_open_session(slots=3)
    path = f"/book/{session.slots[0].id}"
    assert book(client, session.slots[0].id, topic)[0].status_code == 303
    back = client.get(path, headers={"Accept-Language": "en"})
    assert back.status_code == 409
    text = back.get_data(as_text=True)
    assert "You have booked this time" in text and "already taken" not in text
    other = app.test_client().get(path, headers={"Accept-Language": "en"})
    assert other.status_code == 409
    other_text = other.get_data(as_text=True)
    assert "Sorry, this time is already taken." in other_text
    assert "You have booked this time" not in other_text


def test_a_time_not_open_yet_says_when_booking_opens_in_local_time(client):
    region = make_region(timezone="Asia/Oral")
    institution = make_institution(make_district(region))
    session = make_open_session(institution, starts_in_hours=24 * 40, booking_opens_days=30)
    slot = session.slots[0]
    opens = (slot.starts_at - timedelta(days=30)).astimezone(ZoneInfo("Asia/Oral"))
    months_ru = ["января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа",
                 "сентября", "октября", "ноября", "декабря"]  # fmt: skip
    page = client.get(f"/book/{slot.id}", headers={"Accept-Language": "ru"})
    assert page.status_code == 409
    expected = (
        f"Запись на это время откроется {opens.day} {months_ru[opens.month - 1]} {opens.year}"
        f" в {opens:%H:%M} по местному времени."
    )
    assert expected in page.get_data(as_text=True)
    english = client.get(f"/book/{slot.id}", headers={"Accept-Language": "en"})
    assert f"opens on {opens.day} {opens:%B %Y} at {opens:%H:%M}, local time." in english.get_data(
        as_text=True
    )


def test_the_form_offers_the_active_topics_in_their_order_and_the_readers_language(
    client, session, topic
):
    """The form reads its topics with its slot (one JSON column): their order is the topics'
    position, then slug; a retired topic is left out; a name missing in the reader's language
    falls back as everywhere else."""
    # The same position as `topic` (the default), ahead of it by slug.
    later = make_topic(slug="a-later", name_kk="Жер", name_ru="Земля", name_en="Land", position=100)
    first = make_topic(slug="z-first", name_kk="Жол", name_ru="Дороги", name_en="", position=-1)
    make_topic(slug="retired", name_kk="Ескі", name_ru="Старое", name_en="Old", active=False)
    page = client.get(f"/book/{session.slots[0].id}", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    options = re.findall(
        r'<option value="(\d+)"[^>]*>([^<]*)</option>', page.get_data(as_text=True)
    )
    expected = [(str(first.id), "Дороги"), (str(later.id), "Land"), (str(topic.id), "Housing")]
    assert options == expected


def test_the_form_starts_with_no_topic_and_asks_for_one(client, session, topic):
    """The topic list opens on an empty prompt, not on the first topic: a citizen who does not
    touch it is asked to choose (at the field, in their language), not filed under a topic."""
    page = client.get(f"/book/{session.slots[0].id}", headers={"Accept-Language": "en"})
    select_html = re.search(r'<select[^>]*name="topic_id".*?</select>', page.get_data(as_text=True))
    options = re.findall(r"<option ([^>]*)>([^<]*)</option>", select_html.group(0))
    # The first option is what a browser shows and sends when none is marked selected.
    assert options[0][1] == "Choose a topic" and 'value=""' in options[0][0]
    assert all("selected" not in attributes for attributes, _ in options[1:])
    assert "required" in select_html.group(0)
    for sent in ("", None):  # the prompt as a browser sends it, or no field at all
        response, _ = book(client, session.slots[0].id, topic, lang="ru", topic_id=sent)
        assert response.status_code == 422
        text = response.get_data(as_text=True)
        error = re.search(r'<p class="error" id="topic_id-error">([^<]*)</p>', text)
        assert error and error.group(1) == "Выберите тему вашего вопроса."
        assert 'aria-describedby="topic_id-error"' in text
        assert f'<option selected value="{topic.id}"' not in text  # no topic chosen for them
    assert count(Booking) == 0


def _without_tokens(html: str) -> str:
    html = re.sub(r'(name="csrf_token" type="hidden" value=")[^"]+', r"\1CSRF", html)
    return re.sub(r'(name="idempotency_key" type="hidden" value=")[^"]+', r"\1KEY", html)


@pytest.mark.parametrize("lang", ["kk", "ru", "en"])
def test_kept_pages_are_the_pages_rendered_for_the_request(
    app, client, session, topic, monkeypatch, lang
):
    """The booking form and the "time just taken" page are kept as rendered for visitors who
    are not signed in (receptions.layout.visitors_page): what a visitor gets from the kept page,
    the first time and after, is what rendering it for the request gives, the language
    switcher's return path (with the query string) included."""
    from receptions import layout

    full = session.slots[0]
    db.session.execute(Slot.__table__.update().where(Slot.id == full.id).values(booked=1))
    db.session.commit()
    paths = [f"/book/{session.slots[1].id}?from=list&x=%22", f"/book/{full.id}"]
    headers = {"Accept-Language": lang}

    def pages() -> list[str]:
        return [
            _without_tokens(client.get(path, headers=headers).get_data(as_text=True))
            for path in paths
        ]

    layout._KEPT_PAGES.clear()
    first, again = pages(), pages()
    assert len(layout._KEPT_PAGES) == 2
    monkeypatch.setattr(views, "visitors_page", lambda *args, **kwargs: None)
    rendered = pages()
    assert first == again == rendered
    assert "from%3Dlist%26x%3D%2522" in rendered[0] and "ASHYQ" not in rendered[0] + rendered[1]
    tokens = [client.get(paths[0], headers=headers).get_data(as_text=True) for _ in range(2)]
    assert len({csrf_from(page) for page in tokens}) == 1  # one session, one CSRF token
    keys = {form_key(page) for page in tokens}
    assert len(keys) == 2  # a fresh form key for every form


@pytest.mark.parametrize("closed_free_slots", [3, 30])
def test_a_full_slots_page_lists_the_free_times_nearest_free_slots_gives(
    app, client, topic, closed_free_slots
):
    """A full slot's free times are read with the slot (up to 24 candidates, the booking window
    kept in Python); when the candidates run out before six are found (30 free times in the hour
    ahead, where booking has closed), they are read as nearest_free_slots reads them. Either way
    the page lists what nearest_free_slots gives."""
    first = make_open_session(slots=5)  # in 72 hours: open
    add_session(first, hours_later=-71, slots=closed_free_slots)  # in an hour: closed
    add_session(first, hours_later=24 * 40, slots=2)  # in 43 days: not open yet
    add_session(first, hours_later=24, slots=4)
    full = first.slots[0]
    db.session.execute(Slot.__table__.update().where(Slot.id == full.id).values(booked=1))
    db.session.commit()
    page = client.get(f"/book/{full.id}", headers={"Accept-Language": "en"})
    assert page.status_code == 409
    listed = [
        int(n) for n in re.findall(r'class="slot" href="/book/(\d+)"', page.get_data(as_text=True))
    ]
    with app.test_request_context("/"):
        expected = services.nearest_free_slots(
            institution_id=first.institution_id,
            schedule_id=first.schedule_id,
            exclude_slot_id=full.id,
        )
    assert listed == [free.id for free in expected]
    assert len(listed) == 6 and full.id not in listed


def test_a_kept_page_is_each_visitors_own(app, client, session, topic):
    """Each visitor gets their own tokens in a kept form page; a marker sent in the query string
    stays text (nothing a request puts in is searched for markers); a signed-in member of staff
    gets the page rendered for them."""
    from receptions import layout
    from receptions.booking.views import _CSRF_MARKER, _KEY_MARKER, _PANEL_MARKER

    layout._KEPT_PAGES.clear()
    path = f"/book/{session.slots[0].id}"
    first, other = client.get(path).get_data(as_text=True), app.test_client().get(path)
    assert csrf_from(first) != csrf_from(other.get_data(as_text=True))
    for marker in (_CSRF_MARKER, _KEY_MARKER, _PANEL_MARKER):
        page = client.get(f"{path}?x={marker}").get_data(as_text=True)
        assert page.count(csrf_from(page)) == 1  # in its hidden field only
        assert f"x%3D{marker}" in page and page.count('class="panel"') == 1
    staff = make_user(Role.staff, full_name="Дана Қызметкерова")
    signed_in = app.test_client()
    sign_in(signed_in, staff.email, PASSWORD)
    page = signed_in.get(path).get_data(as_text=True)
    assert "Дана Қызметкерова" in page and page.count('class="panel"') == 1


def test_full_slot_gets_409_with_the_nearest_free_times(client, session, topic):
    slot_id, next_id, topic_id = session.slots[0].id, session.slots[1].id, topic.id
    csrf, key = book_form(client, slot_id)
    db.session.execute(Slot.__table__.update().where(Slot.id == slot_id).values(booked=1))
    db.session.commit()
    db.session.remove()  # the tests' requests share the test's session
    seen, stop = _transactional_statements()
    response = client.post(
        f"/book/{slot_id}",
        data={
            "csrf_token": csrf,
            "idempotency_key": key,
            "full_name": "Ерлан Тестов",
            "iin": IIN,
            "phone": "+77011234567",
            "locale": "ru",
            "topic_id": str(topic_id),
            "question": "Вопрос о ремонте дороги",
            "consent": "y",
        },
        headers={"Accept-Language": "en"},
    )
    stop()
    assert response.status_code == 409
    # The slot with its free times (one statement), then the look for a repeat of the form.
    queries = [statement for statement, _ in seen if not statement.startswith("BEGIN")]
    assert len(queries) == 2, queries
    page = response.get_data(as_text=True)
    assert "already taken" in page
    assert f"/book/{next_id}" in page
    assert count(Booking) == 0
    assert client.get(f"/book/{slot_id}").status_code == 409


@pytest.fixture
def rollbacks_sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ROLLBACKs that reached the database (a rollback of a connection with no transaction
    sends nothing), counted; the real rollback still runs."""
    dialect = type(db.engine.dialect)
    real = dialect.do_rollback
    sent: list[str] = []

    def counted(self, connection) -> None:  # type: ignore[no-untyped-def]
        driver = connection.dbapi_connection  # the pool's proxy holds the driver's connection
        if self.name == "postgresql":
            busy = driver.info.transaction_status.name != "IDLE"
        else:
            busy = driver.in_transaction
        if busy:
            sent.append(self.name)
        real(self, connection)

    monkeypatch.setattr(dialect, "do_rollback", counted)
    return sent


def test_a_refused_submission_sends_no_rollback_to_postgresql(
    client, session, topic, rollbacks_sent
):
    """A refusal is decided before anything is written, so its transaction ends with COMMIT,
    and its page is read without a transaction on PostgreSQL: there, psycopg forgets all the
    connection's prepared statements on a ROLLBACK, and a rush's 409s would have every
    statement planned again. (On SQLite the page's reads end with a ROLLBACK in the process,
    which costs nothing.)"""
    slot_id, next_id, topic_id = session.slots[0].id, session.slots[1].id, topic.id

    def taken_meanwhile() -> None:
        db.session.execute(Slot.__table__.update().where(Slot.id == slot_id).values(booked=1))
        db.session.commit()
        db.session.remove()  # the tests' requests share the test's session
        rollbacks_sent.clear()

    chosen = SimpleNamespace(id=topic_id)  # the topic as the form knows it
    response, _ = book(client, slot_id, chosen, lang="en", meanwhile=taken_meanwhile)
    db.session.remove()
    assert response.status_code == 409
    assert f"/book/{next_id}" in response.get_data(as_text=True)
    assert rollbacks_sent == ([] if db.engine.dialect.name == "postgresql" else ["sqlite"])
    assert count(Booking) == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"iin": "900101300127"}, "iin"),
        ({"iin": "12345"}, "iin"),
        ({"iin": "９００１０１３０００１２"}, "iin"),
        ({"phone": "+7 495 123 45 67"}, "phone"),
        ({"phone": "hello"}, "phone"),
        ({"question": ""}, "question"),
        ({"question": "x" * 2001}, "question"),
        ({"consent": None}, "consent"),
        ({"full_name": ""}, "full_name"),
        ({"email": "not-an-email"}, "email"),
        ({"topic_id": "99999"}, "topic_id"),
        ({"accessibility": ["other"]}, "accessibility_note"),
        (
            {"accessibility": ["wheelchair", "other"], "accessibility_note": "   "},
            "accessibility_note",
        ),
    ],
)
def test_bad_input_gets_a_field_message_and_stores_nothing(
    client, session, topic, overrides, field
):
    response, _ = book(client, session.slots[0].id, topic, lang="kk", **overrides)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert '<html lang="kk">' in page and f'id="{field}-error"' in page
    assert count(Booking) == 0 and count(Notification) == 0 and count(StatusEvent) == 0
    db.session.expire_all()
    assert db.session.get(Slot, session.slots[0].id).booked == 0


@pytest.mark.parametrize("minutes_after_opening", [-30, 45, 50, 70 * 60 - 10, 70 * 60 + 45])
def test_nearest_free_times_are_the_first_bookable_ones_of_the_schedule(
    app, session, minutes_after_opening
):
    from datetime import timedelta

    from receptions.booking.services import nearest_free_slots
    from receptions.schedules.queries import window_of
    from scheduling import booking_status
    from scheduling.rules import BookingStatus as WindowStatus

    # A window of 3 days to 2 hours before, so that both of its ends fall inside one session.
    ours = make_open_session(
        session.institution, slots=16, booking_opens_days=3, booking_closes_hours=2
    )
    make_open_session(session.institution, slots=4)  # another schedule's free times
    first, full = ours.slots[0], ours.slots[2]
    db.session.execute(Slot.__table__.update().where(Slot.id == full.id).values(booked=1))
    db.session.commit()
    db.session.expire_all()
    at = first.starts_at - timedelta(days=3) + timedelta(minutes=minutes_after_opening)
    expected = [
        slot.id
        for slot in ours.slots
        if slot.id not in (first.id, full.id)
        and booking_status(slot.starts_at, at, window_of(ours.schedule)) is WindowStatus.open
    ][:6]
    found = nearest_free_slots(
        institution_id=ours.institution_id,
        schedule_id=ours.schedule_id,
        at=at,
        exclude_slot_id=first.id,
    )
    assert [slot.id for slot in found] == expected
    assert expected or minutes_after_opening < 0


@pytest.mark.parametrize(
    ("lang", "message"),
    [
        ("kk", "Жарамсыз эл. пошта адресі."),
        ("ru", "Неверный адрес электронной почты."),
        ("en", "Invalid email address."),
    ],
)
def test_built_in_field_messages_come_in_the_citizens_language(
    client, session, topic, lang, message
):
    # WTForms' own catalogue is read once per process and language, yet never mixes languages.
    for _ in range(2):
        response, _ = book(client, session.slots[0].id, topic, lang=lang, email="not-an-email")
        assert response.status_code == 422
        assert message in response.get_data(as_text=True)



@pytest.mark.parametrize(
    ("lang", "label"), [("kk", "Толық аты-жөні"), ("ru", "ФИО"), ("en", "Full name")]
)
def test_the_manage_page_labels_the_citizens_name_as_a_persons(client, session, topic, lang, label):
    url = _manage(client, session, topic)
    page = client.get(url, headers={"Accept-Language": lang}).get_data(as_text=True)
    assert f"<dt>{label}</dt><dd>Сәуле Ержанқызы</dd>" in page


@pytest.mark.parametrize("key", [None, "", "short"])
def test_a_missing_or_broken_form_key_is_said_in_the_citizens_words(client, session, topic, key):
    response, _ = book(client, session.slots[0].id, topic, lang="ru", idempotency_key=key)
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert "Idempotency" not in text and "idempotency_key" not in text.split("<form")[0]
    assert "Форма устарела или отправлена с другой страницы" in text
    assert count(Booking) == 0


@pytest.mark.parametrize(
    ("lang", "message"),
    [
        ("kk", "Тек ұсынылған нұсқалардан таңдаңыз."),
        ("ru", "Выберите только из предложенных вариантов."),
        ("en", "Choose only from the options given."),
    ],
)
def test_an_unknown_accessibility_need_is_said_at_its_field(client, session, topic, lang, message):
    response, _ = book(
        client, session.slots[0].id, topic, lang=lang, accessibility=["wheelchair", "teleport"]
    )
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert "not a valid choice" not in text and "teleport" not in text
    assert '<fieldset id="accessibility"' in text
    assert 'aria-describedby="accessibility-error"' in text
    assert f'<p class="error" id="accessibility-error">{message}</p>' in text
    assert 'href="#accessibility"' in text  # the error summary links to the group
    assert '<input checked id="accessibility-0" name="accessibility" type="checkbox"' in text
    assert count(Booking) == 0

def test_honeypot_and_missing_csrf_are_refused(client, session, topic):
    assert book(client, session.slots[0].id, topic, website="http://spam")[0].status_code == 400
    response = client.post(f"/book/{session.slots[0].id}", data={"full_name": "x"})
    assert response.status_code == 400
    assert count(Booking) == 0


@pytest.mark.parametrize("hours", [-1, 1, 24 * 40])
def test_past_closed_or_not_yet_open_slots_cannot_be_booked(client, topic, hours):
    session = make_open_session(starts_in_hours=hours)
    assert client.get(f"/book/{session.slots[0].id}").status_code == 409
    assert client.get("/book/987654").status_code == 404


def test_cancelled_session_cannot_be_booked(client, session, topic):
    session.status = "cancelled"
    db.session.commit()
    assert client.get(f"/book/{session.slots[0].id}").status_code == 409


def _manage(client, session, topic):
    response, _ = book(client, session.slots[0].id, topic)
    return response.headers["Location"].split("?")[0]


def test_cancel_needs_a_post_and_frees_the_seat(client, session, topic):
    url = _manage(client, session, topic)
    page = client.get(url + "/cancel")  # a mail scanner following the link changes nothing
    assert page.status_code == 200
    assert db.session.scalars(select(Booking)).one().status == "booked"
    response = client.post(
        url + "/cancel",
        data={"csrf_token": csrf_from(page.get_data(as_text=True)), "confirm": "yes"},
    )
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.scalars(select(Booking)).one().status == "cancelled_by_citizen"
    assert db.session.get(Slot, session.slots[0].id).booked == 0
    second = client.post(
        url + "/cancel",
        data={"csrf_token": csrf_from(page.get_data(as_text=True)), "confirm": "yes"},
    )
    assert second.status_code == 409


def test_forged_manage_links_are_404(client, session, topic):
    _manage(client, session, topic)
    for token in ("A" * 43, "short", "x" * 300):
        assert client.get(f"/m/{token}").status_code == 404
        assert client.get(f"/m/{token}/booking.ics").status_code == 404


def test_reschedule_moves_the_seat_atomically(client, session, topic):
    url = _manage(client, session, topic)
    page = client.get(url + "/reschedule", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    target = session.slots[2]
    response = client.post(
        url + "/reschedule",
        data={"csrf_token": csrf_from(page.get_data(as_text=True)), "slot_id": str(target.id)},
    )
    assert response.status_code == 303
    db.session.expire_all()
    booking = db.session.scalars(select(Booking)).one()
    assert booking.slot_id == target.id
    assert [db.session.get(Slot, s.id).booked for s in session.slots] == [0, 0, 1]
    assert [e.kind for e in booking.events] == ["booked", "rescheduled"]


def test_reschedule_to_a_taken_or_foreign_slot_is_refused(client, session, topic):
    url = _manage(client, session, topic)
    page = client.get(url + "/reschedule").get_data(as_text=True)
    db.session.execute(
        Slot.__table__.update().where(Slot.id == session.slots[1].id).values(booked=1)
    )
    db.session.commit()
    taken = client.post(
        url + "/reschedule",
        data={"csrf_token": csrf_from(page), "slot_id": str(session.slots[1].id)},
    )
    assert taken.status_code == 409
    # The citizen chooses again on the same page: it offers moves, not new bookings.
    text = taken.get_data(as_text=True)
    assert 'role="alert"' in text and 'name="slot_id"' in text
    assert f'value="{session.slots[2].id}"' in text and "/book/" not in text
    foreign = make_open_session(session.institution)
    other = client.post(
        url + "/reschedule",
        data={"csrf_token": csrf_from(page), "slot_id": str(foreign.slots[0].id)},
    )
    assert other.status_code in (400, 422)
    db.session.expire_all()
    assert db.session.scalars(select(Booking)).one().slot_id == session.slots[0].id


def test_changes_close_at_the_cancellation_deadline(client, topic):
    late = make_open_session(starts_in_hours=2.5, cancel_hours_before=3)
    url = _manage(client, late, topic)
    assert client.get(url + "/cancel").status_code == 409
    assert client.get(url + "/reschedule").status_code == 409
    assert "Cancel the booking" not in client.get(url, headers={"Accept-Language": "en"}).get_data(
        as_text=True
    )



def _csrf(client):
    """A CSRF token of this client's session, from a page that always has a form."""
    return csrf_from(client.get(f"/book/{make_open_session().slots[0].id}").get_data(as_text=True))


@pytest.mark.parametrize("starts_in_hours", [2.5, -1])  # past the deadline; past the meeting
def test_the_waitlist_is_closed_once_the_booking_can_no_longer_change(
    client, topic, starts_in_hours
):
    late = make_open_session(starts_in_hours=starts_in_hours, cancel_hours_before=3)
    _booking, token = booking_with_token(late.slots[0], topic=topic)
    response = client.post(
        f"/m/{token}/waitlist",
        data={"csrf_token": _csrf(client), "confirm": "yes"},
        headers={"Accept-Language": "en"},
    )
    assert response.status_code == 409
    assert "the deadline has passed" in response.get_data(as_text=True)
    assert count(WaitlistEntry) == 0


@pytest.mark.parametrize("status", ["cancelled_by_citizen", "cancelled_by_institution", "attended"])
def test_changing_a_closed_booking_says_it_is_closed_not_that_time_ran_out(
    client, session, topic, status
):
    _booking, token = booking_with_token(session.slots[0], topic=topic, status=status)
    for page in ("cancel", "reschedule"):
        response = client.get(f"/m/{token}/{page}", headers={"Accept-Language": "en"})
        assert response.status_code == 409
        text = response.get_data(as_text=True)
        assert "already cancelled or closed" in text and "deadline" not in text

def test_booking_ics_is_a_valid_calendar(client, session, topic):
    url = _manage(client, session, topic)
    response = client.get(url + "/booking.ics")
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    event = vobject.readOne(response.get_data(as_text=True)).vevent
    assert event.dtstart.value == session.slots[0].starts_at
    assert "private" in response.headers["Cache-Control"]



@pytest.mark.parametrize(
    ("language", "meeting", "reference"),
    [
        ("kk", "Кездесу: ", "Жазылу нөмірі: "),
        ("ru", "Встреча: ", "Номер записи: "),
        ("en", "Meeting: ", "Booking reference: "),
    ],
)
def test_booking_ics_is_in_the_readers_language(client, session, topic, language, meeting, reference):
    url = _manage(client, session, topic)
    response = client.get(url + "/booking.ics", headers={"Accept-Language": language})
    event = vobject.readOne(response.get_data(as_text=True)).vevent
    booking = db.session.scalars(select(Booking)).one()
    assert event.summary.value.startswith(meeting)
    assert event.description.value == reference + booking.reference


def _ics_uid(client, url, host):
    response = client.get(url + "/booking.ics", headers={"Host": host})
    assert response.status_code == 200, (host, response.status_code)
    return vobject.readOne(response.get_data(as_text=True)).vevent.uid.value


def test_booking_ics_uid_is_the_same_whichever_name_the_site_is_reached_by(app, client, session, topic):
    url = _manage(client, session, topic)
    reference = db.session.scalars(select(Booking)).one().reference
    names = ("ashyq-esik.kz", "www.ashyq-esik.kz", "WWW.Ashyq-Esik.kz.:8443")
    assert {_ics_uid(client, url, host) for host in names} == {f"booking-{reference}@ashyq-esik.kz"}
    assert _ics_uid(client, url, "[::1]:5000") == f"booking-{reference}@localhost"
    app.config["CALENDAR_UID_DOMAIN"] = "priemnaya.example.kz"
    for host in (*names, "[::1]:5000", "10.0.0.7:5000"):
        assert _ics_uid(client, url, host) == f"booking-{reference}@priemnaya.example.kz"

def test_staff_cancelling_a_session_cancels_its_bookings(app, client, session, topic):
    book(client, session.slots[0].id, topic)
    from flask_login import login_user

    from receptions.auth.models import Role
    from receptions.schedules.services import cancel_session
    from tests.factories import make_user

    head = make_user(Role.head, institution=session.institution)
    with app.test_request_context():
        login_user(head)
        cancel_session(head, session.id, "Аварийное отключение электричества")
    db.session.expire_all()
    booking = db.session.scalars(select(Booking)).one()
    assert booking.status == "cancelled_by_institution"
    assert db.session.get(Slot, session.slots[0].id).booked == 0
    templates = {n.template for n in db.session.scalars(select(Notification))}
    assert "session_cancelled" in templates


def test_other_accessibility_need_must_be_described(client, session, topic):
    response, _ = book(client, session.slots[0].id, topic, lang="en", accessibility=["other"])
    assert response.status_code == 422
    assert "You ticked “Other”: please describe what you need." in response.get_data(as_text=True)
    assert count(Booking) == 0 and count(Notification) == 0
    described, _ = book(
        client,
        session.slots[0].id,
        topic,
        accessibility=["other"],
        accessibility_note="Нужен пандус у входа",
    )
    assert described.status_code == 303
    booking = db.session.scalars(select(Booking)).one()
    assert booking.accessibility == ["other"]
    assert booking.accessibility_note == "Нужен пандус у входа"


def _reschedule(client, url, slot_id, lang="en"):
    page = client.get(url + "/reschedule", headers={"Accept-Language": lang})
    return client.post(
        url + "/reschedule",
        data={"csrf_token": csrf_from(page.get_data(as_text=True)), "slot_id": str(slot_id)},
        headers={"Accept-Language": lang},
    )


def _moved_messages() -> int:
    return count(Notification, Notification.template == "booking_rescheduled")


def test_reschedule_offers_every_free_time_in_the_window_by_day(client, topic):
    """Every free time of the schedule that can be booked now is offered (not the nearest 30),
    in a group per local day; a full time and one whose booking has not opened are not."""
    session = make_open_session(slots=40)
    later = add_session(session, hours_later=24 * 7, slots=30)
    beyond = add_session(session, hours_later=24 * 40, slots=2)  # booking not open yet
    url = _manage(client, session, topic)
    full = later.slots[3]
    db.session.execute(Slot.__table__.update().where(Slot.id == full.id).values(booked=1))
    db.session.commit()
    page = client.get(url + "/reschedule", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    offered = [int(n) for n in re.findall(r'name="slot_id" id="slot-\d+" value="(\d+)"', html)]
    expected = [s.id for s in session.slots[1:]] + [s.id for s in later.slots if s is not full]
    assert offered == expected and len(offered) == 68
    assert not {s.id for s in beyond.slots} & set(offered)
    zone = ZoneInfo(session.institution.district.region.timezone)
    days = {s.starts_at.astimezone(zone).date() for s in session.slots[1:] + later.slots}
    groups = re.findall(r'<details class="move-day"[^>]*>\s*<summary>([^<]*)', html)
    assert len(groups) == len(days) >= 2
    assert html.count("<legend") == len(days) + 1  # "New time", and each day's


def test_reschedule_to_a_later_free_time_moves_once(client, topic):
    session = make_open_session(slots=40)
    url = _manage(client, session, topic)
    target = session.slots[35]
    assert f'value="{target.id}"' in client.get(url + "/reschedule").get_data(as_text=True)
    response = _reschedule(client, url, target.id)
    assert response.status_code == 303
    db.session.expire_all()
    booking = db.session.scalars(select(Booking)).one()
    assert booking.slot_id == target.id
    assert [e.kind for e in booking.events] == ["booked", "rescheduled"]
    assert _moved_messages() == 2  # one SMS and one e-mail, not twice
    booked = {s.id: db.session.get(Slot, s.id).booked for s in session.slots}
    assert booked[target.id] == 1 and sum(booked.values()) == 1


@pytest.mark.parametrize(
    ("choice", "status", "reason"),
    [
        ("full", 409, "already taken"),
        ("foreign", 422, "same schedule"),
        ("missing", 422, "same schedule"),
        ("current", 422, "Choose a different time."),
        ("huge", 422, "same schedule"),
        ("word", 422, "same schedule"),
    ],
)
def test_refused_reschedule_gives_the_reason_and_changes_nothing(
    client, topic, choice, status, reason
):
    session = make_open_session(slots=40)
    url = _manage(client, session, topic)
    full = session.slots[35]
    db.session.execute(Slot.__table__.update().where(Slot.id == full.id).values(booked=1))
    db.session.commit()
    slot_id = {
        "full": full.id,
        "foreign": make_open_session(session.institution).slots[0].id,
        "missing": 987654,
        "current": session.slots[0].id,
        "huge": "9" * 30,
        "word": "abc",
    }[choice]
    response = _reschedule(client, url, slot_id)
    assert response.status_code == status
    text = response.get_data(as_text=True)
    assert reason in text
    # The reschedule page again, with the reason and the times to choose from.
    assert 'role="alert"' in text and f'value="{session.slots[1].id}"' in text
    db.session.expire_all()
    booking = db.session.scalars(select(Booking)).one()
    assert booking.slot_id == session.slots[0].id
    assert [e.kind for e in booking.events] == ["booked"]
    assert _moved_messages() == 0
    assert db.session.get(Slot, session.slots[0].id).booked == 1
    assert db.session.get(Slot, full.id).booked == 1


def test_reschedule_into_a_month_where_the_citizen_has_a_booking_is_refused(client, topic):
    first = make_open_session(booking_opens_days=40)
    next_month = add_session(first, hours_later=31 * 24)  # 31 days on is always another month
    url = _manage(client, first, topic)
    assert book(client, next_month.slots[0].id, topic)[0].status_code == 303
    response = _reschedule(client, url, next_month.slots[1].id)
    assert response.status_code == 409
    text = response.get_data(as_text=True)
    assert "already have a booking" in text
    assert 'role="alert"' in text and f'value="{first.slots[1].id}"' in text
    db.session.expire_all()
    moved = db.session.scalars(select(Booking).where(Booking.slot_id == first.slots[0].id)).one()
    assert [e.kind for e in moved.events] == ["booked"]
    assert db.session.get(Slot, next_month.slots[1].id).booked == 0


def _stored_values() -> list[str]:
    """Every text value in every table, as a dump of the database would show it."""
    values = []
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(table.select()):
            values += [str(value) for value in row if value is not None]
    return values


def test_no_stored_value_rebuilds_the_manage_link(app, client, session, topic):
    from receptions.notify.services import send_due

    response, data = book(client, session.slots[0].id, topic)
    token = response.headers["Location"].split("/m/")[1].split("?")[0]
    key = data["idempotency_key"]
    assert token == services.manage_token_for(key)
    send_due()  # the outbox holds the link only until the message is out
    booking = db.session.scalars(select(Booking)).one()
    row = db.session.execute(select(Booking.__table__).where(Booking.id == booking.id)).one()
    assert "idempotency_key" not in row._mapping
    assert booking.idempotency_hash == services.idempotency_hash(key) != key
    stored = _stored_values()
    assert not [value for value in stored if token in value or key in value]
    # Not even with SECRET_KEY: no stored value is the form's key the token is derived from.
    assert not [value for value in stored if services.manage_token_for(value) == token]
    again = client.post(f"/book/{session.slots[0].id}", data=data)
    assert again.headers["Location"] == response.headers["Location"]


def test_migration_replaces_stored_keys_with_their_hash(empty_database):  # noqa: F811
    from flask_migrate import downgrade, upgrade

    from receptions import create_app
    from tests.conftest import app_settings
    from tests.factories import make_booking

    app = create_app(app_settings(empty_database))
    with app.app_context():
        upgrade()
        moved, kept = (make_booking(slot) for slot in make_open_session(slots=2).slots)
        db.session.add(
            StatusEvent(booking=moved, kind="rescheduled", at=moved.created_at + timedelta(hours=5))
        )
        db.session.commit()
        ids = (moved.id, kept.id)
        db.session.remove()
        downgrade(revision="0006")
        for booking_id in ids:
            db.session.execute(
                text("UPDATE booking SET idempotency_key = :key WHERE id = :id"),
                {"key": f"form-key-{booking_id}-0123456789", "id": booking_id},
            )
        db.session.commit()
        upgrade()
        assert "idempotency_key" not in {
            c["name"] for c in inspect(db.engine).get_columns("booking")
        }
        for booking_id in ids:
            booking = db.session.get(Booking, booking_id)
            assert booking.idempotency_hash == services.idempotency_hash(
                f"form-key-{booking_id}-0123456789"
            )
        moved, kept = (db.session.get(Booking, booking_id) for booking_id in ids)
        assert moved.booked_at == moved.created_at + timedelta(hours=5)
        assert kept.booked_at == kept.created_at
        db.session.remove()
        db.engine.dispose()


def test_a_kept_blank_form_is_the_fresh_one_and_follows_the_topic_list(client, session, topic):
    """booking.views keeps blank forms rendered; what it serves is what rendering gives now."""
    from receptions.booking import views

    slot_id = session.slots[0].id
    views._blank_fields_for.cache_clear()
    first = client.get(f"/book/{slot_id}", headers={"Accept-Language": "kk"})
    kept = client.get(f"/book/{slot_id}", headers={"Accept-Language": "kk"})
    fresh_keys = views._blank_fields_for.cache_info().currsize
    views._blank_fields_for.cache_clear()
    fresh = client.get(f"/book/{slot_id}", headers={"Accept-Language": "kk"})

    def fields(page) -> str:
        html = page.get_data(as_text=True)
        return html[html.index("<fieldset>") : html.index("</form>")]

    assert fields(first) == fields(kept) == fields(fresh)
    assert "ТҮКШ" in fields(kept) and 'lang="kk"' in first.get_data(as_text=True)
    assert fresh_keys == 1
    # Another language and an edited topic list are other forms, never a kept one.
    assert "Housing" in fields(client.get(f"/book/{slot_id}", headers={"Accept-Language": "en"}))
    make_topic(name_ru="Дороги", name_kk="Жолдар", name_en="Roads")
    again = fields(client.get(f"/book/{slot_id}", headers={"Accept-Language": "kk"}))
    assert "Жолдар" in again and "ТҮКШ" in again
    topic.active = False
    db.session.commit()
    assert "ТҮКШ" not in fields(client.get(f"/book/{slot_id}", headers={"Accept-Language": "kk"}))


def test_a_refused_form_keeps_what_was_typed_and_its_errors(client, session, topic):
    csrf, key = book_form(client, session.slots[0].id, "en")
    page = client.post(
        f"/book/{session.slots[0].id}",
        data={"csrf_token": csrf, "idempotency_key": key, "full_name": "Typed Name", "iin": "1"},
        headers={"Accept-Language": "en"},
    )
    html = page.get_data(as_text=True)
    assert page.status_code == 422
    assert 'value="Typed Name"' in html and 'aria-invalid="true"' in html
    # and the blank form served next is blank again
    blank = client.get(f"/book/{session.slots[0].id}", headers={"Accept-Language": "en"})
    assert "Typed Name" not in blank.get_data(as_text=True)


def test_a_reference_already_in_use_is_drawn_again_in_the_same_transaction(
    client, session, topic, monkeypatch
):
    """The insert skips a taken reference itself (ON CONFLICT DO NOTHING) and draws again."""
    first, _ = book(client, session.slots[0].id, topic)
    assert first.status_code == 303
    taken = db.session.scalars(select(Booking.reference)).one()
    draws = iter([taken, taken, taken.split("-")[0] + "-ABCDEF"])
    monkeypatch.setattr(services, "_new_reference", lambda prefix: next(draws))
    second, _ = book(client, session.slots[1].id, topic, iin=make_iin(2), phone="+77019876543")
    assert second.status_code == 303
    references = sorted(db.session.scalars(select(Booking.reference)))
    assert references == sorted([taken, taken.split("-")[0] + "-ABCDEF"])
    assert count(StatusEvent) == 2 and count(Notification) == 4
    assert db.session.scalar(select(Slot.booked).where(Slot.id == session.slots[1].id)) == 1


def test_the_booking_read_model_holds_what_the_models_hold(session):
    """The booking pages read a slot as frozen objects from one row; each of their fields must
    be the model's value of the same name (the row's columns are placed by position)."""
    from dataclasses import fields, is_dataclass

    from receptions.booking.services import get_slot

    slot = session.slots[1]
    view = get_slot(slot.id)
    pairs = [
        (view, slot),
        (view.session, slot.session),
        (view.session.schedule, slot.session.schedule),
        (view.session.institution, slot.session.institution),
        (view.session.institution.district, slot.session.institution.district),
        (view.session.institution.district.region, slot.session.institution.district.region),
    ]
    compared = 0
    for read, model in pairs:
        for field in fields(read):
            value = getattr(read, field.name)
            if not is_dataclass(value):
                assert value == getattr(model, field.name), (type(read).__name__, field.name)
                compared += 1
    assert compared >= 25
    assert view.session.institution.name == slot.session.institution.name


def _transactional_statements():
    """(statement, ran inside a transaction) for each statement the app's engine runs."""
    from sqlalchemy import event

    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        dbapi = conn.connection.dbapi_connection
        if conn.dialect.name == "postgresql":
            seen.append((statement, not dbapi.autocommit))
        else:
            seen.append((statement, True))  # SQLite: the request's BEGIN as always

    event.listen(db.engine, "before_cursor_execute", record)
    return seen, lambda: event.remove(db.engine, "before_cursor_execute", record)


def test_opening_the_form_reads_without_a_transaction_on_postgresql(app, client, session, topic):
    full = make_open_session(slots=1, capacity=1)
    db.session.execute(Slot.__table__.update().values(booked=1).where(Slot.id == full.slots[0].id))
    db.session.commit()
    open_id, full_id, topic_id = session.slots[0].id, full.slots[0].id, topic.id
    # The tests' requests share the test's session: end what reading the ids began.
    db.session.remove()
    seen, stop = _transactional_statements()
    try:
        assert client.get(f"/book/{open_id}").status_code == 200
        db.session.remove()
        assert client.get(f"/book/{full_id}").status_code == 409  # with its free times
        db.session.remove()
        # One statement each: the form's slot with the topics it offers, the full slot with its
        # free times (on SQLite each request's BEGIN as well).
        queries = [statement for statement, _ in seen if statement != "BEGIN"]
        assert len(queries) == 2
        in_transaction = {flag for _, flag in seen}
        assert in_transaction == ({False} if db.engine.dialect.name == "postgresql" else {True})
        seen.clear()
        response, _ = book(client, open_id, db.session.get(type(topic), topic_id))
        assert response.status_code == 303
        writes = [
            flag for statement, flag in seen if statement.startswith(("INSERT", "UPDATE", "WITH"))
        ]
        # The seat, then the booking, its event and its messages: one statement on PostgreSQL
        # (data-modifying CTEs), three on SQLite. The booking itself is one transaction.
        assert len(writes) == (2 if db.engine.dialect.name == "postgresql" else 4)
        assert all(writes)
    finally:
        stop()


def test_a_citizens_way_to_a_booking_sends_postgresql_no_rollback(
    client, session, topic, rollbacks_sent
):
    """The pages a citizen opens on the way to a booking and after it read without a
    transaction on PostgreSQL: none ends with a ROLLBACK, which would make psycopg forget the
    connection's prepared statements (the booking's among them)."""
    response, _ = book(client, session.slots[0].id, topic)
    manage = response.headers["Location"].split("?")[0]
    reference = db.session.scalars(select(Booking.reference)).one()
    district = session.institution.district
    pages = [
        "/",
        f"/regions/{district.region.code}",
        f"/regions/{district.region.code}/{district.slug}",
        "/institutions?q=",
        f"/institutions/{session.institution_id}",
        f"/book/{session.slots[1].id}",
        manage,
        f"{manage}/booking.ics",
        f"/status/{reference}",
    ]
    db.session.remove()  # the tests' requests share the test's session
    seen, stop = _transactional_statements()
    rollbacks_sent.clear()
    try:
        for path in pages:
            assert client.get(path).status_code == 200, path
            db.session.remove()
    finally:
        stop()
    on_postgresql = db.engine.dialect.name == "postgresql"
    assert len(seen) >= len(pages)
    assert {flag for _, flag in seen} == ({False} if on_postgresql else {True})
    if on_postgresql:
        assert rollbacks_sent == []


def test_a_write_on_a_connection_reading_without_a_transaction_is_refused(app, session):
    """Such a write would commit at once, outside any all-or-nothing unit: on PostgreSQL it is
    refused before it runs (on SQLite the request's reads are in a transaction, which the
    session's end rolls back). Nothing is stored either way."""
    from receptions.booking.models import Topic
    from receptions.database import read_only_request

    topics = count(Topic)
    db.session.remove()  # end what the fixtures read
    with app.test_request_context("/"):
        read_only_request()
        insert = Topic.__table__.insert().values(
            slug="stray", name_kk="а", name_ru="б", name_en="c", active=True, position=99
        )
        if db.engine.dialect.name == "postgresql":
            with pytest.raises(RuntimeError, match="INSERT outside write_transaction"):
                db.session.execute(insert)
            # A write inside a CTE is a write too.
            inserting_cte = insert.returning(Topic.__table__.c.id).cte("stray")
            with pytest.raises(RuntimeError, match="WITH outside write_transaction"):
                db.session.execute(select(inserting_cte.c.id))
        else:
            db.session.execute(insert)
        db.session.remove()
    assert count(Topic) == topics


def test_a_write_after_reading_without_a_transaction_is_still_one_transaction(app, session):
    from receptions.booking.models import Topic
    from receptions.database import read_only_request, write_transaction

    topics = count(Topic)
    seen, stop = _transactional_statements()
    try:
        with app.test_request_context("/"):
            read_only_request()
            services.get_slot(session.slots[0].id)
            with pytest.raises(RuntimeError), write_transaction():
                db.session.add(Topic(slug="half-way", name_kk="а", name_ru="б", name_en="c"))
                db.session.flush()
                raise RuntimeError("fails after its first write")
            db.session.remove()
    finally:
        stop()
    writes = [flag for statement, flag in seen if statement.startswith("INSERT")]
    assert writes == [True]
    assert count(Topic) == topics  # rolled back: nothing stored half-way


def _retire(topic):
    from receptions.booking.models import Topic

    def retire():
        db.session.execute(
            Topic.__table__.update().where(Topic.id == topic.id).values(active=False)
        )
        db.session.commit()

    return retire


@pytest.mark.parametrize(
    ("lang", "message", "sent"),
    [
        ("kk", "Тізімнен тақырып", None),  # the topic of the form, retired since it was opened
        ("en", "Choose a topic", None),
        ("en", "Choose a topic", "2147483648"),  # past PostgreSQL's integer
        ("ru", "Выберите тему", "9223372036854775808"),  # past SQLite's integer
        ("kk", "Тізімнен тақырып", "-5"),
        ("kk", "Тізімнен тақырып", "0"),
    ],
)
def test_a_topic_retired_after_the_form_was_opened_is_refused_on_its_field(
    client, session, topic, lang, message, sent
):
    other = make_topic(name_en="Roads and transport")
    overrides = {"topic_id": sent} if sent else {}
    response, _ = book(
        client, session.slots[0].id, topic, lang=lang, meanwhile=_retire(topic), **overrides
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="topic_id-error"' in page and message in page
    # The form comes back with the topics that are active now, and the citizen's answers.
    assert f'value="{other.id}"' in page and f'<option value="{topic.id}"' not in page
    assert "Сәуле Ержанқызы" in page
    assert count(Booking) == 0 and count(Notification) == 0 and count(StatusEvent) == 0


def test_a_slot_taken_meanwhile_is_said_before_a_topic_retired_meanwhile(client, session, topic):
    """The submission's one read decides the slot first: a full slot is the 409 page with other
    times (a topic can be chosen again there, a slot cannot), whatever the topic's state."""
    slot = session.slots[0]

    def both() -> None:
        _retire(topic)()
        db.session.execute(Slot.__table__.update().where(Slot.id == slot.id).values(booked=1))
        db.session.commit()

    response, _ = book(client, slot.id, topic, lang="en", meanwhile=both)
    assert response.status_code == 409
    assert "already taken" in response.get_data(as_text=True)
    assert count(Booking) == 0


def test_a_retired_topic_is_said_with_the_forms_other_mistakes(client, session, topic):
    response, _ = book(
        client, session.slots[0].id, topic, lang="en", meanwhile=_retire(topic), iin="12345"
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="iin-error"' in page and 'id="topic_id-error"' in page
    assert count(Booking) == 0


def _attended(session, topic):
    """A booking whose citizen came to the meeting, and its manage link."""
    booking, token = booking_with_token(session.slots[0], topic=topic, status="attended")
    return booking, f"/m/{token}"


def _answer(client, url, form, data, csrf=None):
    """Send one of the manage page's forms, with the page's CSRF token unless given one."""
    page = client.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    return client.post(
        f"{url}/{form}",
        data={"csrf_token": csrf or csrf_from(page), **data},
        headers={"Accept-Language": "en"},
    )


def test_feedback_with_a_mistake_is_the_manage_page_again_with_the_comment(client, session, topic):
    booking, url = _attended(session, topic)
    response = _answer(client, url, "feedback", {"comment": "Приняли вежливо, всё объяснили"})
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert booking.reference in text  # the manage page, not a bare error page
    assert "Приняли вежливо, всё объяснили</textarea>" in text
    assert 'href="#rating"' in text and 'aria-describedby="rating-error"' in text
    assert '<p class="error" id="rating-error">Choose a rating.</p>' in text
    assert count(StatusEvent, StatusEvent.kind == "feedback") == 0


def test_refused_feedback_is_the_manage_page_with_the_reason(client, session, topic):
    booking, url = _attended(session, topic)
    csrf = csrf_from(client.get(url).get_data(as_text=True))
    assert _answer(client, url, "feedback", {"rating": "5"}, csrf).status_code == 303
    again = _answer(client, url, "feedback", {"rating": "1", "comment": "Передумал"}, csrf)
    assert again.status_code == 409
    text = again.get_data(as_text=True)
    assert booking.reference in text and 'role="alert"' in text
    assert "you have already rated this meeting" in text
    db.session.expire_all()
    assert db.session.scalars(select(Feedback)).one().rating == 5


def test_a_really_resolved_answer_with_a_mistake_or_too_early_is_the_manage_page(
    client, session, topic
):
    booking, url = _attended(session, topic)
    question = outcome_long_ago(booking, days=2)
    early = _answer(client, url, "resolved", {"resolved": "yes"})
    assert early.status_code == 409
    text = early.get_data(as_text=True)
    assert booking.reference in text and "30 days after" in text
    question.outcome_at -= timedelta(days=30)
    db.session.commit()
    unanswered = _answer(client, url, "resolved", {})
    assert unanswered.status_code == 422
    text = unanswered.get_data(as_text=True)
    assert booking.reference in text and 'href="#resolved"' in text
    assert '<p class="error" id="resolved-error">Choose an answer.</p>' in text
    assert count(Feedback) == 0



def test_the_really_resolved_question_is_answered_once(client, session, topic):
    booking, url = _attended(session, topic)
    outcome_long_ago(booking)
    csrf = csrf_from(client.get(url).get_data(as_text=True))
    assert _answer(client, url, "resolved", {"resolved": "yes"}, csrf).status_code == 303
    again = _answer(client, url, "resolved", {"resolved": "no"}, csrf)
    assert again.status_code == 409
    text = again.get_data(as_text=True)
    assert "you have already told us whether your question was resolved" in text
    db.session.expire_all()
    assert db.session.scalars(select(Feedback)).one().really_resolved is True



def test_every_page_of_a_manage_link_is_kept_by_no_cache(client, session, topic):
    """They show the citizen's name and question: neither a shared computer's browser nor a
    proxy may keep them."""
    url = _manage(client, session, topic)
    _attended_booking, attended_url = _attended(make_open_session(), topic)
    csrf = _csrf(client)
    answers = [
        client.get(url),
        client.get(url + "?new=1"),
        client.get(url + "/cancel"),
        client.get(url + "/reschedule"),
        client.get(url + "/booking.ics"),
        client.post(url + "/reschedule", data={"csrf_token": csrf}),  # no time chosen: 422
        client.post(url + "/waitlist", data={"csrf_token": csrf, "confirm": "yes"}),
        client.post(url + "/cancel", data={"csrf_token": csrf, "confirm": "yes"}),
        client.get(url + "/cancel"),  # now a refusal: already cancelled
        client.get(attended_url),
        client.post(attended_url + "/feedback", data={"csrf_token": csrf}),  # 422
        client.post(attended_url + "/resolved", data={"csrf_token": csrf, "resolved": "yes"}),
        client.get("/m/" + "A" * 43),  # not a booking: 404
    ]
    statuses = [200, 200, 200, 200, 200, 422, 303, 303, 409, 200, 422, 409, 404]
    assert [answer.status_code for answer in answers] == statuses
    assert [answer.headers.get("Cache-Control") for answer in answers] == [
        "private, no-store"
    ] * len(answers)
