"""schedules: a room field that only repeats the institution's address is cleared

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 21:00:00

The new-schedule form filled the one-language "Room or place" field with the institution's
address in the language of whoever created the schedule, and a schedule's room wins over the
address: every citizen then read that address in that language (a Russian address on Kazakh
pages, messages and calendar files). Where the room is exactly one of the institution's
addresses, it is cleared, so that each reader gets the address in their own language. A room
staff typed themselves is kept. Downgrading cannot tell which rooms were cleared: it keeps them
empty (the pages show the same address, in the reader's language).
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.execute(
        """
        UPDATE schedule SET location = ''
        WHERE location <> '' AND EXISTS (
            SELECT 1 FROM institution
            WHERE institution.id = schedule.institution_id
              AND TRIM(schedule.location) IN (institution.address_kk, institution.address_ru)
        )
        """
    )


def downgrade():
    pass
