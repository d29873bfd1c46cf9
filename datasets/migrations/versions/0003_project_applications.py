"""project applications

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 15:12:30.863771
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('applicant', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('requested_datasets', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('decided_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('decision_reason', sa.Text(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_column('decision_reason')
        batch_op.drop_column('decided_by')
        batch_op.drop_column('requested_datasets')
        batch_op.drop_column('applicant')

