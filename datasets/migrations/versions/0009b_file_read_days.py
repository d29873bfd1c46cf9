"""file read days: each person's daily volume of file content shown in the browser (issue 19)

Revision ID: 0009b
Revises: 0007
Create Date: 2026-12-04 17:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009b'
down_revision = '0009a'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per (person, UTC day): the hub adds each read with one conditional UPDATE, so two
    # reads at once can never both pass the threshold.
    op.create_table(
        'file_read_days',
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('bytes_read', sa.BigInteger(), nullable=False, server_default='0'),
        sa.Column('reads', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('blocked_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('username', 'day'),
    )


def downgrade() -> None:
    op.drop_table('file_read_days')
