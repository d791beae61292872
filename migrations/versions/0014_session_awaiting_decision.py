"""sessions kept for their bookings take no new ones until staff decide

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-10 10:00:00.000000

A session that citizens booked is never changed or dropped when its schedule's rule changes: it
is kept as it is, for staff to keep or cancel. `awaiting_decision` marks it until then (the
public pages and the booking's slot read leave it out by that column), `kept_by_staff` marks one
that staff chose to keep: an ordinary session again, which the rule leaves as it is.
Sessions kept before this revision are marked by the next run of `flask schedules materialise`
(or the next change of their schedule).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('session', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                'awaiting_decision', sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch_op.add_column(
            sa.Column('kept_by_staff', sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade():
    with op.batch_alter_table('session', schema=None) as batch_op:
        batch_op.drop_column('kept_by_staff')
        batch_op.drop_column('awaiting_decision')
