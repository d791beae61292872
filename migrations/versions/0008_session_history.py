"""sessions: one session per schedule and start but for withdrawn ones (they keep their time
and history); an exception from the region's open-door day remembers the schedule it detached;
no schedule whose booking closes before it opens

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 23:00:00.000000

The unique (schedule_id, starts_at) covered every session, so a session the system withdrew at
10:00 kept any new session from being planned at 10:00 (a schedule changed back, or changed on a
session that citizens had booked and cancelled): saving it failed. A withdrawn session's
`in_force` is NULL, and the unique constraint is (schedule_id, starts_at, in_force): NULLs never
collide. (Not a partial index: SQLite prepares a statement again on every run when a bound
parameter could decide whether a partial index applies.)

A schedule saved with `booking_closes_hours` beyond `booking_opens_days` (booking would close
before it opens) is given the widest window that is not inverted: it closes when it opens.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

WITHDRAWN = "status = 'cancelled' AND cancel_code = 'schedule_changed'"


def upgrade():
    with op.batch_alter_table('session', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('in_force', sa.Boolean(), nullable=True, server_default=sa.true())
        )
    op.execute(f"UPDATE session SET in_force = NULL WHERE {WITHDRAWN}")
    with op.batch_alter_table('session', schema=None) as batch_op:
        batch_op.drop_constraint('uq_session_schedule_id_starts_at', type_='unique')
        batch_op.create_unique_constraint(
            batch_op.f('uq_session_schedule_id_starts_at_in_force'),
            ['schedule_id', 'starts_at', 'in_force'],
        )
    with op.batch_alter_table('unified_rule_exception', schema=None) as batch_op:
        batch_op.add_column(sa.Column('detached_schedule_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_unified_rule_exception_detached_schedule_id_schedule'),
            'schedule',
            ['detached_schedule_id'],
            ['id'],
            ondelete='SET NULL',
        )
    op.execute(
        "UPDATE schedule SET booking_closes_hours = booking_opens_days * 24"
        " WHERE booking_closes_hours > booking_opens_days * 24"
    )


def downgrade():
    with op.batch_alter_table('unified_rule_exception', schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f('fk_unified_rule_exception_detached_schedule_id_schedule'),
            type_='foreignkey',
        )
        batch_op.drop_column('detached_schedule_id')
    # Fails if a schedule has a withdrawn and another session at the same start: the older
    # schema cannot hold both.
    with op.batch_alter_table('session', schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f('uq_session_schedule_id_starts_at_in_force'), type_='unique'
        )
        batch_op.create_unique_constraint(
            batch_op.f('uq_session_schedule_id_starts_at'), ['schedule_id', 'starts_at']
        )
        batch_op.drop_column('in_force')
