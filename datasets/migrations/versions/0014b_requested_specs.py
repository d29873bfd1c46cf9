"""requested specs: the variables and period an application asks for, per dataset, as amended

Revision ID: 0014b
Revises: 0014
Create Date: 2026-12-05 08:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0014b'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # {dataset slug: GrantSpec.to_json()}; None for applications made before it (whole datasets).
    with op.batch_alter_table('projects') as batch:
        batch.add_column(sa.Column('requested_specs', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('projects') as batch:
        batch.drop_column('requested_specs')
