"""storage quotas per project: /project, each member's home, each workspace's /tmp

Revision ID: 0012a
Revises: 0007
Create Date: 2026-12-04 17:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0012a'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Empty: the installation's defaults (TRE_PROJECT_QUOTA, TRE_HOME_QUOTA, TRE_TMP_QUOTA).
    with op.batch_alter_table('projects') as batch:
        batch.add_column(sa.Column('project_quota', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('home_quota', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('tmp_quota', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('projects') as batch:
        batch.drop_column('tmp_quota')
        batch.drop_column('home_quota')
        batch.drop_column('project_quota')
