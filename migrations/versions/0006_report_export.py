"""background report exports

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'report_export',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('scope_key', sa.String(length=80), nullable=False),
        sa.Column('first_month', sa.String(length=7), nullable=False),
        sa.Column('months', sa.Integer(), nullable=False),
        sa.Column('grouping', sa.String(length=20), nullable=False),
        sa.Column('kind', sa.String(length=4), nullable=False),
        sa.Column('locale', sa.String(length=5), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('done_rows', sa.Integer(), nullable=False),
        sa.Column('total_rows', sa.Integer(), nullable=False),
        sa.Column('file_name', sa.String(length=200), nullable=True),
        sa.Column('error', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_report_export_user_id_user_account'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_report_export')),
        sa.UniqueConstraint('token', name=op.f('uq_report_export_token')),
    )
    with op.batch_alter_table('report_export', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_export_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('report_export', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_export_user_id'))
    op.drop_table('report_export')
