"""package index: policies, requests, and the distributions the in-enclave index serves

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 17:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'package_policies',
        sa.Column('scope', sa.String(length=64), nullable=False),
        sa.Column('policy', sa.Enum('none', 'pre-approved', 'any-approved-on-request', native_enum=False,
                                    length=32, name='policy'), nullable=False),
        sa.Column('set_by', sa.String(length=64), nullable=False),
        sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('scope'),
    )
    op.create_table(
        'package_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project', sa.String(length=64), nullable=False),
        sa.Column('requested_by', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('specifier', sa.String(length=200), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('state', sa.Enum('pending', 'refused', 'published', 'failed', 'removed', native_enum=False,
                                   length=16, name='requeststate'), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('closure', sa.JSON(), nullable=False),
        sa.Column('decided_by', sa.String(length=64), nullable=True),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('decision_reason', sa.Text(), nullable=True),
        sa.Column('outcome', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_package_requests_project', 'package_requests', ['project'])
    op.create_table(
        'package_distributions',
        sa.Column('filename', sa.String(length=300), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('version', sa.String(length=100), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('source', sa.Enum('allowlist', 'request', native_enum=False, length=16, name='source'),
                  nullable=False),
        sa.Column('request_id', sa.Integer(), nullable=True),
        sa.Column('published_by', sa.String(length=64), nullable=False),
        sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('filename'),
    )
    op.create_index('ix_package_distributions_name', 'package_distributions', ['name'])


def downgrade() -> None:
    op.drop_index('ix_package_distributions_name', 'package_distributions')
    op.drop_table('package_distributions')
    op.drop_index('ix_package_requests_project', 'package_requests')
    op.drop_table('package_requests')
    op.drop_table('package_policies')
