"""image registry: analysis images and the image each project is pinned to

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 16:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'images',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('digest', sa.String(length=80), nullable=False),
        sa.Column('dockerfile', sa.Text(), nullable=False),
        sa.Column('build_args', sa.JSON(), nullable=False),
        sa.Column('built_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('built_by', sa.String(length=64), nullable=False),
        sa.Column('sbom', sa.JSON(), nullable=False),
        sa.Column('status', sa.Enum('active', 'retired', name='imagestatus', native_enum=False, length=16),
                  nullable=False),
        sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('retired_by', sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('digest'),
        sa.UniqueConstraint('name', 'version'),
    )
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('image_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_projects_image_id_images', 'images', ['image_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_constraint('fk_projects_image_id_images', type_='foreignkey')
        batch_op.drop_column('image_id')
    op.drop_table('images')
