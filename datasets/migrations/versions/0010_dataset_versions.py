"""dataset versions: one row per registered version with its manifest, root hash and tables

Revision ID: 0010
Revises: 0009c
Create Date: 2026-12-04 17:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009c'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Versions registered before manifests existed get no row: a grant naming them mounts nothing
    # until a steward registers the dataset again (`tre datasets add`), which walks the whole tree.
    op.create_table(
        'dataset_versions',
        sa.Column('dataset_slug', sa.String(length=64), nullable=False),
        sa.Column('version', sa.String(length=32), nullable=False),
        sa.Column('storage_path', sa.String(length=500), nullable=False),
        sa.Column('root_hash', sa.String(length=64), nullable=False),
        sa.Column('files', sa.JSON(), nullable=False),
        sa.Column('tables', sa.JSON(), nullable=False),
        sa.Column('row_count', sa.BigInteger(), nullable=False),
        sa.Column('byte_count', sa.BigInteger(), nullable=False),
        sa.Column('status', sa.Enum('active', 'suspended', 'retired', name='versionstatus', native_enum=False, length=16),
                  nullable=False),
        sa.Column('status_reason', sa.Text(), nullable=True),
        sa.Column('registered_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('registered_by', sa.String(length=64), nullable=False),
        sa.Column('scrubbed_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['dataset_slug'], ['datasets.slug'], name='fk_dataset_versions_dataset_slug_datasets'),
        sa.PrimaryKeyConstraint('dataset_slug', 'version'),
    )


def downgrade() -> None:
    op.drop_table('dataset_versions')
