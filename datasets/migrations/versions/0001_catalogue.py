"""catalogue: people, datasets, projects, memberships, grants

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 14:13:18.805070
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('datasets',
    sa.Column('slug', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('data_controller', sa.String(length=200), nullable=False),
    sa.Column('sensitivity', sa.String(length=32), nullable=False),
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('storage_path', sa.String(length=500), nullable=False),
    sa.Column('row_count', sa.Integer(), nullable=True),
    sa.Column('licence', sa.Text(), nullable=False),
    sa.Column('columns', sa.JSON(), nullable=False),
    sa.Column('file_hashes', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('slug')
    )
    op.create_table('people',
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('is_admin', sa.Boolean(), nullable=False),
    sa.Column('is_data_steward', sa.Boolean(), nullable=False),
    sa.Column('checker_accredited_until', sa.Date(), nullable=True),
    sa.PrimaryKeyConstraint('username')
    )
    op.create_table('projects',
    sa.Column('slug', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('lay_summary', sa.Text(), nullable=False),
    sa.Column('purpose', sa.Text(), nullable=False),
    sa.Column('public_interest', sa.Text(), nullable=False),
    sa.Column('principal_investigator', sa.String(length=200), nullable=False),
    sa.Column('approval_reference', sa.String(length=100), nullable=True),
    sa.Column('starts_on', sa.Date(), nullable=True),
    sa.Column('ends_on', sa.Date(), nullable=True),
    sa.Column('status', sa.Enum('requested', 'approved', 'active', 'suspended', 'closed', name='projectstatus', native_enum=False, length=16), nullable=False),
    sa.Column('mem_limit', sa.String(length=16), nullable=True),
    sa.Column('cpu_limit', sa.Double(), nullable=True),
    sa.PrimaryKeyConstraint('slug')
    )
    op.create_table('grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_slug', sa.String(length=64), nullable=False),
    sa.Column('dataset_slug', sa.String(length=64), nullable=False),
    sa.Column('dataset_version', sa.String(length=32), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('ends_on', sa.Date(), nullable=False),
    sa.Column('approved_by', sa.String(length=64), nullable=False),
    sa.Column('approval_reference', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['dataset_slug'], ['datasets.slug'], ),
    sa.ForeignKeyConstraint(['project_slug'], ['projects.slug'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_slug', 'dataset_slug', 'starts_on')
    )
    op.create_table('memberships',
    sa.Column('project_slug', sa.String(length=64), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('role', sa.Enum('principal_investigator', 'researcher', name='memberrole', native_enum=False, length=32), nullable=False),
    sa.ForeignKeyConstraint(['project_slug'], ['projects.slug'], ),
    sa.ForeignKeyConstraint(['username'], ['people.username'], ),
    sa.PrimaryKeyConstraint('project_slug', 'username')
    )


def downgrade() -> None:
    op.drop_table('memberships')
    op.drop_table('grants')
    op.drop_table('projects')
    op.drop_table('people')
    op.drop_table('datasets')
