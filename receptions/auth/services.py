"""Sign-in, password and invitation rules for staff accounts."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from .. import access
from ..audit.services import record as audit
from ..database import utcnow, write_transaction
from ..errors import DomainError, Forbidden, InvalidEntry
from ..extensions import db
from .models import PasswordToken, Role, User

MIN_PASSWORD_LENGTH = 10


class InvalidToken(DomainError):
    status_code = 404
    message = _l("This link is invalid, has already been used or has expired. Ask for a new one.")


def _hasher() -> PasswordHasher:
    config = current_app.config
    return PasswordHasher(
        time_cost=config.get("ARGON2_TIME_COST", 3),
        memory_cost=config.get("ARGON2_MEMORY_COST", 65536),
    )


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def _dummy_hash() -> str:
    # Verifying against a real hash for unknown e-mails keeps the timing of a failed
    # sign-in the same whether or not the account exists.
    cached = current_app.extensions.get("ashyq_dummy_hash")
    if cached is None:
        cached = current_app.extensions["ashyq_dummy_hash"] = hash_password(secrets.token_hex(16))
    return str(cached)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def find_user_by_email(email: str) -> User | None:
    return db.session.scalars(
        select(User).where(func.lower(User.email) == normalise_email(email))
    ).first()


def authenticate(email: str, password: str) -> User | None:
    """The active user with these credentials, or None (never says which part was wrong)."""
    user = find_user_by_email(email)
    stored = user.password_hash if user and user.password_hash else _dummy_hash()
    try:
        _hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.active or not user.password_hash:
        return None
    with write_transaction():
        user = db.session.get(User, user.id)
        assert user is not None
        user.last_sign_in_at = utcnow()
        if _hasher().check_needs_rehash(stored):
            user.password_hash = hash_password(password)
    return user


def _token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_password_token(user: User) -> str:
    """Add a one-time set-password token for `user` to the transaction; returns the raw token."""
    raw = secrets.token_urlsafe(32)
    lifetime = timedelta(hours=current_app.config["INVITATION_LIFETIME_HOURS"])
    db.session.add(
        PasswordToken(user=user, token_hash=_token_digest(raw), expires_at=utcnow() + lifetime)
    )
    return raw


def user_for_token(raw: str) -> User:
    token = db.session.scalars(
        select(PasswordToken).where(PasswordToken.token_hash == _token_digest(raw))
    ).first()
    if token is None or token.used_at is not None or token.expires_at < utcnow():
        raise InvalidToken()
    return token.user


def set_password_with_token(raw: str, password: str) -> User:
    with write_transaction():
        token = db.session.scalars(
            select(PasswordToken).where(PasswordToken.token_hash == _token_digest(raw))
        ).first()
        if token is None or token.used_at is not None or token.expires_at < utcnow():
            raise InvalidToken()
        token.used_at = utcnow()
        token.user.password_hash = hash_password(password)
        audit("user.password_set", "user", token.user_id)
        return token.user


@dataclass(frozen=True)
class Invitation:
    user: User
    token: str


def _check_scope_for_grant(
    actor: User,
    role: Role,
    institution_id: int | None,
    district_id: int | None,
    region_id: int | None,
) -> None:
    if role not in access.grantable_roles(actor):
        raise Forbidden()
    level = role.scope_level
    if level == "institution":
        if institution_id is None:
            raise InvalidEntry({"institution_id": _("Choose the institution for this account.")})
        access.get_institution_in_scope(actor, institution_id)
    elif level == "district":
        if district_id is None:
            raise InvalidEntry({"district_id": _("Choose the district for this account.")})
        access.get_district_in_scope(actor, district_id)
    elif level == "region":
        if region_id is None:
            raise InvalidEntry({"region_id": _("Choose the region for this account.")})
        access.get_region_in_scope(actor, region_id)


def invite_user(
    actor: User,
    *,
    email: str,
    full_name: str,
    role: Role,
    locale: str = "kk",
    institution_id: int | None = None,
    district_id: int | None = None,
    region_id: int | None = None,
) -> Invitation:
    """Create an account without a password and a one-time link to set it."""
    _check_scope_for_grant(actor, role, institution_id, district_id, region_id)
    level = role.scope_level
    with write_transaction():
        if find_user_by_email(email) is not None:
            raise InvalidEntry({"email": _("An account with this e-mail address already exists.")})
        user = User(
            email=normalise_email(email),
            full_name=full_name.strip(),
            role=role.value,
            locale=locale,
            institution_id=institution_id if level == "institution" else None,
            district_id=district_id if level == "district" else None,
            region_id=region_id if level == "region" else None,
        )
        db.session.add(user)
        token = issue_password_token(user)
        db.session.flush()
        audit("user.invited", "user", user.id, role=role.value)
    return Invitation(user=user, token=token)


def update_user(
    actor: User,
    user_id: int,
    *,
    full_name: str,
    role: Role,
    active: bool,
    institution_id: int | None,
    district_id: int | None,
    region_id: int | None,
) -> User:
    """Administrators change any account; nobody can lock themselves out."""
    if actor.role_enum is not Role.admin:
        raise Forbidden()
    _check_scope_for_grant(actor, role, institution_id, district_id, region_id)
    if actor.id == user_id and (not active or role is not Role.admin):
        raise DomainError(str(_l("You cannot remove your own administrator access.")))
    level = role.scope_level
    with write_transaction():
        user = db.session.get(User, user_id)
        if user is None:
            raise access.NotInScope()
        user.full_name = full_name.strip()
        user.role = role.value
        user.active = active
        user.institution_id = institution_id if level == "institution" else None
        user.district_id = district_id if level == "district" else None
        user.region_id = region_id if level == "region" else None
        audit("user.updated", "user", user.id, role=role.value, active=active)
    return user


def reissue_invitation(actor: User, user_id: int) -> Invitation:
    if actor.role_enum is not Role.admin:
        raise Forbidden()
    with write_transaction():
        user = db.session.get(User, user_id)
        if user is None:
            raise access.NotInScope()
        token = issue_password_token(user)
        audit("user.link_issued", "user", user.id)
    return Invitation(user=user, token=token)
