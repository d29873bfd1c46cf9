"""egress releases: one row per released request, so the database itself refuses a second release

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 19:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The request is the key: whatever coordinates the replicas, a second release of one request
    # is a unique violation. record_sha256 is the digest of the signed decision.json written out.
    op.create_table(
        'egress_releases',
        sa.Column('request_id', sa.Integer(), nullable=False),
        sa.Column('released_by', sa.String(length=64), nullable=False),
        sa.Column('released_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('record_sha256', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(['request_id'], ['egress_requests.id']),
        sa.PrimaryKeyConstraint('request_id'),
    )
    # Requests released before this migration: their row, without the record's digest (not kept then).
    op.execute(sa.text(
        "INSERT INTO egress_releases (request_id, released_by, released_at) "
        "SELECT id, COALESCE(decided_by, 'egress'), COALESCE(decided_at, created_at) FROM egress_requests "
        "WHERE state = 'released'"))


def downgrade() -> None:
    op.drop_table('egress_releases')
