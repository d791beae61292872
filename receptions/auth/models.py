"""Accounts of staff, heads, akimat officers and administrators."""

from __future__ import annotations

import enum
from datetime import datetime

from flask_babel import lazy_gettext as _l
from flask_login import UserMixin
from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..database import UTCDateTime, utcnow
from ..extensions import db
from ..geography.models import District, Region
from ..institutions.models import Institution


class Role(enum.StrEnum):
    staff = "staff"
    head = "head"
    district_officer = "district_officer"
    region_officer = "region_officer"
    admin = "admin"

    @property
    def label(self) -> str:
        return str(ROLE_LABELS[self])

    @property
    def scope_level(self) -> str:
        """Which record a user of this role is attached to."""
        return {
            Role.staff: "institution",
            Role.head: "institution",
            Role.district_officer: "district",
            Role.region_officer: "region",
            Role.admin: "nation",
        }[self]


ROLE_LABELS = {
    Role.staff: _l("Institution staff"),
    Role.head: _l("Head of institution"),
    Role.district_officer: _l("District akimat officer"),
    Role.region_officer: _l("Regional akimat officer"),
    Role.admin: _l("Administrator"),
}


class User(UserMixin, db.Model):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(200), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    institution_id: Mapped[int | None] = mapped_column(ForeignKey("institution.id"), index=True)
    district_id: Mapped[int | None] = mapped_column(ForeignKey("district.id"), index=True)
    region_id: Mapped[int | None] = mapped_column(ForeignKey("region.id"), index=True)
    locale: Mapped[str] = mapped_column(String(5), default="kk")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    institution: Mapped[Institution | None] = relationship()
    district: Mapped[District | None] = relationship()
    region: Mapped[Region | None] = relationship()

    @property
    def is_active(self) -> bool:  # Flask-Login refuses sign-in for inactive accounts
        return self.active

    @property
    def role_enum(self) -> Role:
        return Role(self.role)

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role}>"


class PasswordToken(db.Model):
    """A one-time link to set a password (invitation or reset); only its hash is stored."""

    __tablename__ = "password_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()
