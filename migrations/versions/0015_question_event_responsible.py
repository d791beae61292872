"""a question's history names the responsible person a follow-up change handed it to

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-12 10:00:00.000000

Staff change a pending question's responsible person or extend its due date from the follow-up
list; each change is a question_event ("reassigned", "due_date_changed") with the reason in its
note. `responsible` keeps whom a "reassigned" step handed the question to (empty for every other
step, and for the steps recorded before this revision).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('question_event', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('responsible', sa.String(length=200), nullable=False, server_default='')
        )


def downgrade():
    with op.batch_alter_table('question_event', schema=None) as batch_op:
        batch_op.drop_column('responsible')
