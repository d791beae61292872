"""report exports: room for the "csv-excel" format

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08 10:00:00

A background export's format may now be "csv-excel" (the CSV that Excel opens by double-click
with the separators of the officer's language), longer than the four characters the column had.
Downgrading deletes such exports (the links last a day; their files are removed when they expire
on a newer version, or by hand from the export folder) before the column is narrowed again.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('report_export') as batch_op:
        batch_op.alter_column(
            'kind', existing_type=sa.String(length=4), type_=sa.String(length=12),
            existing_nullable=False,
        )


def downgrade():
    op.execute("DELETE FROM report_export WHERE LENGTH(kind) > 4")
    with op.batch_alter_table('report_export') as batch_op:
        batch_op.alter_column(
            'kind', existing_type=sa.String(length=12), type_=sa.String(length=4),
            existing_nullable=False,
        )
