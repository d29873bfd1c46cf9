"""egress reviews: a checker's written reason for overriding an automatic Fail

Revision ID: 0009a
Revises: 0008
Create Date: 2026-12-04 17:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009a'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A Fail is final unless a named checker overrides it on the record: the reason is kept with
    # that checker's approval and copied into the signed decision record at release.
    op.add_column('egress_reviews', sa.Column('override_reason', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('egress_reviews') as batch:
        batch.drop_column('override_reason')
