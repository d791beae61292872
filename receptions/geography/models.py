"""Regions (first-level units, ISO 3166-2:KZ) and their districts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..i18n import localized

if TYPE_CHECKING:
    from ..institutions.models import Institution


class Region(db.Model):
    __tablename__ = "region"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(8), unique=True)
    short: Mapped[str] = mapped_column(String(3), unique=True)
    kind: Mapped[str] = mapped_column(String(10), default="region")
    name_kk: Mapped[str] = mapped_column(String(120))
    name_ru: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(40))

    districts: Mapped[list[District]] = relationship(
        back_populates="region", order_by="District.name_ru"
    )

    @property
    def name(self) -> str:
        return localized(self, "name")

    def __repr__(self) -> str:
        return f"<Region {self.code}>"


class District(db.Model):
    __tablename__ = "district"
    __table_args__ = (UniqueConstraint("region_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"), index=True)
    slug: Mapped[str] = mapped_column(String(60))
    name_kk: Mapped[str] = mapped_column(String(120))
    name_ru: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(120))

    region: Mapped[Region] = relationship(back_populates="districts")
    institutions: Mapped[list[Institution]] = relationship(back_populates="district")

    @property
    def name(self) -> str:
        return localized(self, "name")

    @property
    def name_with_region(self) -> str:
        """"Region — district", for lists where districts of several regions share a name."""
        return f"{self.region.name} — {self.name}"

    def __repr__(self) -> str:
        return f"<District {self.slug}>"
