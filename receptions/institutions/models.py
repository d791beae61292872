"""The institution, the unit that holds open-door days and receptions."""

from __future__ import annotations

import enum
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import Boolean, ForeignKey, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..database import UTCDateTime, utcnow
from ..extensions import db
from ..geography.models import District
from ..i18n import FALLBACK_ORDER, localized


class InstitutionType(enum.StrEnum):
    school = "school"
    kindergarten = "kindergarten"
    college = "college"
    polyclinic = "polyclinic"
    hospital = "hospital"
    social_centre = "social_centre"
    other = "other"

    @property
    def label(self) -> str:
        return str(INSTITUTION_TYPE_LABELS[self])


INSTITUTION_TYPE_LABELS = {
    InstitutionType.school: _l("School"),
    InstitutionType.kindergarten: _l("Kindergarten"),
    InstitutionType.college: _l("College"),
    InstitutionType.polyclinic: _l("Polyclinic"),
    InstitutionType.hospital: _l("Hospital"),
    InstitutionType.social_centre: _l("Social-service centre"),
    InstitutionType.other: _l("Other"),
}


def search_key(text: str) -> str:
    return " ".join(text.casefold().split())


class InstitutionNames:
    """An institution's name and address in the reader's language, for the model and for the
    booking pages' read model of it (`booking.services.BookableInstitution`)."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return localized(self, "name")

    @property
    def address(self) -> str:
        # Kept in Kazakh and Russian only: English readers get the Russian one (FALLBACK_ORDER).
        return localized(self, "address")

    @property
    def head_position(self) -> str:
        return localized(self, "head_position")

    def host_position(self, host_name: str, typed: str) -> str:
        """The position to show beside a schedule's host: the one staff typed (one language),
        else the head's in the reader's language when the host is the head."""
        if typed:
            return typed
        return self.head_position if host_name and host_name == self.head_name else ""

    @property
    def name_in_each_language(self) -> dict[str, str]:
        """The name in every language (Russian where one is missing), for a message that is
        written later in its reader's language, not in the language of whoever queued it."""
        return self._in_each_language("name")

    @property
    def address_in_each_language(self) -> dict[str, str]:
        """The address in every language, as `name_in_each_language` gives the name."""
        return self._in_each_language("address")

    def _in_each_language(self, field: str) -> dict[str, str]:
        return {lang: localized(self, field, lang) for lang in FALLBACK_ORDER}


class Institution(InstitutionNames, db.Model):
    __tablename__ = "institution"

    id: Mapped[int] = mapped_column(primary_key=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("district.id"), index=True)
    type: Mapped[str] = mapped_column(String(20), index=True)
    name_kk: Mapped[str] = mapped_column(String(200))
    name_ru: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200), default="")
    address_kk: Mapped[str] = mapped_column(String(300), default="")
    address_ru: Mapped[str] = mapped_column(String(300), default="")
    head_name: Mapped[str] = mapped_column(String(200), default="")
    head_position_kk: Mapped[str] = mapped_column(String(200), default="")
    head_position_ru: Mapped[str] = mapped_column(String(200), default="")
    head_position_en: Mapped[str] = mapped_column(String(200), default="")
    accessibility_kk: Mapped[str] = mapped_column(Text, default="")
    accessibility_ru: Mapped[str] = mapped_column(Text, default="")
    accessibility_en: Mapped[str] = mapped_column(Text, default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Case-folded names for search: SQLite's LIKE and lower() fold ASCII only, not Cyrillic.
    search_text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    district: Mapped[District] = relationship(back_populates="institutions")

    @property
    def accessibility(self) -> str:
        return localized(self, "accessibility")

    @property
    def type_label(self) -> str:
        return InstitutionType(self.type).label

    @property
    def region_id(self) -> int:
        return self.district.region_id

    def refresh_search_text(self) -> None:
        self.search_text = search_key(" ".join((self.name_kk, self.name_ru, self.name_en or "")))

    def __repr__(self) -> str:
        return f"<Institution {self.id} {self.name_ru!r}>"


@event.listens_for(Institution, "before_insert")
@event.listens_for(Institution, "before_update")
def _keep_search_text(_mapper: object, _connection: object, target: Institution) -> None:
    target.refresh_search_text()
