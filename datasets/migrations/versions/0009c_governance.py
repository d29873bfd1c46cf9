"""governance (issue 19, items 4, 5, 7): people bound to their provider's subject and accredited
until a date; projects' closing day, retention period and archiving time

Revision ID: 0009c
Revises: 0007
Create Date: 2026-12-04 17:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009c'
down_revision = '0009b'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('people') as batch:
        batch.add_column(sa.Column('oidc_subject', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('accredited_on', sa.Date(), nullable=True))
        batch.add_column(sa.Column('accredited_until', sa.Date(), nullable=True))
        batch.add_column(sa.Column('accredited_by', sa.String(length=64), nullable=True))
        batch.create_unique_constraint('uq_people_oidc_subject', ['oidc_subject'])
    with op.batch_alter_table('projects') as batch:
        batch.add_column(sa.Column('closed_on', sa.Date(), nullable=True))
        batch.add_column(sa.Column('retention_days', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('projects') as batch:
        batch.drop_column('archived_at')
        batch.drop_column('retention_days')
        batch.drop_column('closed_on')
    with op.batch_alter_table('people') as batch:
        batch.drop_constraint('uq_people_oidc_subject', type_='unique')
        batch.drop_column('accredited_by')
        batch.drop_column('accredited_until')
        batch.drop_column('accredited_on')
        batch.drop_column('oidc_subject')
