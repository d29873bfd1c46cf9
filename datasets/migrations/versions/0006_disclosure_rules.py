"""disclosure rules: per-project overrides of the automatic checks' parameters

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 17:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # {} keeps ACRO's defaults; e.g. {"threshold": 20} raises the minimum cell count for one project.
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('disclosure_rules', sa.JSON(), nullable=False, server_default='{}'))


def downgrade() -> None:
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_column('disclosure_rules')
