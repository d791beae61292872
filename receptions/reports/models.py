"""A download prepared in the background: who asked for it, how far it is, where the file is."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..database import UTCDateTime, utcnow
from ..extensions import db


class ReportExport(db.Model):
    """A large export: its status and progress live here, so any web instance can show them."""

    __tablename__ = "report_export"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The secret part of the progress and download links; they also check the officer.
    token: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    scope_key: Mapped[str] = mapped_column(String(80))
    first_month: Mapped[str] = mapped_column(String(7))
    months: Mapped[int] = mapped_column(Integer, default=1)
    grouping: Mapped[str] = mapped_column(String(20))
    # csv-excel | csv | xlsx | pdf
    kind: Mapped[str] = mapped_column(String(12))
    locale: Mapped[str] = mapped_column(String(5))
    # queued | running | done | failed
    status: Mapped[str] = mapped_column(String(10), default="queued")
    done_rows: Mapped[int] = mapped_column(Integer, default=0)
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    file_name: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def percent(self) -> int:
        if self.status == "done":
            return 100
        return min(99, self.done_rows * 100 // self.total_rows) if self.total_rows else 0
