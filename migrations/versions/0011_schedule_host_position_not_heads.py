"""schedules: a host position that only repeats the head's is cleared

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 21:40:00

As with the room (0010): the new-schedule form and the region's open-door day filled the
one-language host position with the head's position in one language, and every citizen read it
in that language ("Директор" on Kazakh pages). Where the host is the head and the position is
one of the head's positions, it is cleared: the pages then show the head's position in the
reader's language. A position staff typed for another host is kept. Downgrading cannot tell
which were cleared and keeps them empty (the pages show the same position, in the reader's
language).
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.execute(
        """
        UPDATE schedule SET host_position = ''
        WHERE host_position <> '' AND EXISTS (
            SELECT 1 FROM institution
            WHERE institution.id = schedule.institution_id
              AND institution.head_name <> ''
              AND schedule.host_name = institution.head_name
              AND TRIM(schedule.host_position) IN (
                  institution.head_position_kk,
                  institution.head_position_ru,
                  institution.head_position_en
              )
        )
        """
    )


def downgrade():
    pass
