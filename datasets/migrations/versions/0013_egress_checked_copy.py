"""egress files: the digest of the copy their automatic checks last ran on (at adding, replacing or submitting)

Revision ID: 0013
Revises: 0012a
Create Date: 2026-12-05 08:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012a'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Empty for files added before: their checks ran at submission, on the frozen copy (sha256).
    with op.batch_alter_table('egress_files') as batch:
        batch.add_column(sa.Column('checked_sha256', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('egress_files') as batch:
        batch.drop_column('checked_sha256')
