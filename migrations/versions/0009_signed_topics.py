"""month sign-off: the month's questions by topic are signed with its figures

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 20:20:33.714461

A roll-up serves a signed institution-month from its snapshot, but the top topics beside it were
read from today's rows: a question recorded or moved after sign-off changed the topics while the
questions total stayed as signed. A sign-off now also stores its questions per topic
(month_signoff_topic). Sign-offs made before have none and cannot be given them (what was on
which topic when they were signed is not known): `topics_signed` is false for them, and their
months' topics stay live until the head signs a correction.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'month_signoff_topic',
        sa.Column('signoff_id', sa.Integer(), nullable=False),
        sa.Column('topic_id', sa.Integer(), nullable=False),
        sa.Column('questions', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ['signoff_id'],
            ['month_signoff.id'],
            name=op.f('fk_month_signoff_topic_signoff_id_month_signoff'),
            ondelete='CASCADE',
        ),
        sa.ForeignKeyConstraint(
            ['topic_id'], ['topic.id'], name=op.f('fk_month_signoff_topic_topic_id_topic')
        ),
        sa.PrimaryKeyConstraint('signoff_id', 'topic_id', name=op.f('pk_month_signoff_topic')),
    )
    with op.batch_alter_table('month_signoff', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('topics_signed', sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade():
    with op.batch_alter_table('month_signoff', schema=None) as batch_op:
        batch_op.drop_column('topics_signed')
    op.drop_table('month_signoff_topic')
