"""booking: only a keyed hash of the form's idempotency key; booked_at for reminders

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:00:00.000000

The manage token is HMAC(SECRET_KEY, "manage:" + idempotency key): with the key stored in clear, a
database dump and SECRET_KEY rebuilt every manage link. The key is replaced by
HMAC(SECRET_KEY, "idempotency:" + key), which still recognises a second submission of the same
form (the migration uses the SECRET_KEY the application runs with) but rebuilds nothing.

`booked_at` is when the citizen chose the current time: the last reschedule, else the booking.
"""
import hashlib
import hmac

from alembic import op
import sqlalchemy as sa
from flask import current_app


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

booking = sa.table(
    'booking',
    sa.column('id', sa.Integer()),
    sa.column('idempotency_key', sa.String()),
    sa.column('idempotency_hash', sa.String()),
)


def upgrade():
    with op.batch_alter_table('booking', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('booked_at', sa.DateTime(timezone=True), nullable=True))
    connection = op.get_bind()
    secret = current_app.config['SECRET_KEY'].encode()
    rows = connection.execute(sa.select(booking.c.id, booking.c.idempotency_key)).all()
    if rows:
        connection.execute(
            booking.update()
            .where(booking.c.id == sa.bindparam('row_id'))
            .values(idempotency_hash=sa.bindparam('key_hash')),
            [
                {
                    'row_id': row_id,
                    'key_hash': hmac.new(
                        secret, b'idempotency:' + key.encode(), hashlib.sha256
                    ).hexdigest(),
                }
                for row_id, key in rows
            ],
        )
    op.execute(
        "UPDATE booking SET booked_at = COALESCE("
        "(SELECT MAX(status_event.at) FROM status_event"
        " WHERE status_event.booking_id = booking.id AND status_event.kind = 'rescheduled'),"
        " created_at)"
    )
    with op.batch_alter_table('booking', schema=None) as batch_op:
        batch_op.drop_constraint('uq_booking_idempotency_key', type_='unique')
        batch_op.drop_column('idempotency_key')
        batch_op.alter_column('idempotency_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('booked_at', existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.create_unique_constraint('uq_booking_idempotency_hash', ['idempotency_hash'])


def downgrade():
    # The raw keys are gone for good: the hash takes their place, still unique and non-empty.
    with op.batch_alter_table('booking', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=64), nullable=True))
    op.execute("UPDATE booking SET idempotency_key = idempotency_hash")
    with op.batch_alter_table('booking', schema=None) as batch_op:
        batch_op.drop_constraint('uq_booking_idempotency_hash', type_='unique')
        batch_op.drop_column('idempotency_hash')
        batch_op.drop_column('booked_at')
        batch_op.alter_column('idempotency_key', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint('uq_booking_idempotency_key', ['idempotency_key'])
