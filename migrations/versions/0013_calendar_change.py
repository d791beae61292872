"""calendar changes: what a date added to or removed from the working calendar did to sessions

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 10:00:00.000000

A date added to or removed from the working calendar brings the schedules it reaches in line
with their rules at once (in the administrator's request when they are few, else in the
background). Each change records its schedules, its progress and its outcome (sessions added,
changed and withdrawn; booked sessions kept as conflicts) for the calendar page.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'calendar_change',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('added', sa.Boolean(), nullable=False),
        sa.Column('requested_by_id', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('schedule_ids', sa.JSON(), nullable=False),
        sa.Column('schedules_done', sa.Integer(), nullable=False),
        sa.Column('created', sa.Integer(), nullable=False),
        sa.Column('updated', sa.Integer(), nullable=False),
        sa.Column('withdrawn', sa.Integer(), nullable=False),
        sa.Column('conflict_ids', sa.JSON(), nullable=False),
        sa.Column('error', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['requested_by_id'], ['user_account.id'], name=op.f('fk_calendar_change_requested_by_id_user_account'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_change')),
    )
    with op.batch_alter_table('calendar_change', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calendar_change_day'), ['day'], unique=False)


def downgrade():
    with op.batch_alter_table('calendar_change', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calendar_change_day'))
    op.drop_table('calendar_change')
