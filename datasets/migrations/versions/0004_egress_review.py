"""egress review: export requests, groups, files, reviews, comments; reviews required per project

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

STATES = ('draft', 'submitted', 'partially_reviewed', 'reviewed', 'returned', 'approved', 'released',
          'rejected', 'withdrawn')


def upgrade() -> None:
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('egress_reviews_required', sa.Integer(), nullable=False, server_default='2'))
        batch_op.create_check_constraint('ck_projects_egress_two_reviews', 'egress_reviews_required >= 2')

    op.create_table(
        'egress_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_slug', sa.String(length=64), nullable=False),
        sa.Column('author', sa.String(length=64), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('state', sa.Enum(*STATES, name='requeststate', native_enum=False, length=24), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('decided_by', sa.String(length=64), nullable=True),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['author'], ['people.username']),
        sa.ForeignKeyConstraint(['project_slug'], ['projects.slug']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_egress_requests_project_slug', 'egress_requests', ['project_slug'])
    op.create_table(
        'egress_groups',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('request_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('context', sa.Text(), nullable=False),
        sa.Column('controls', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['request_id'], ['egress_requests.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('request_id', 'name'),
    )
    op.create_table(
        'egress_files',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('request_id', sa.Integer(), nullable=False),
        sa.Column('group_name', sa.String(length=100), nullable=False),
        sa.Column('path', sa.String(length=1000), nullable=False),
        sa.Column('kind', sa.Enum('output', 'supporting', name='filekind', native_enum=False, length=16),
                  nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=True),
        sa.Column('size', sa.Integer(), nullable=True),
        sa.Column('checks', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['request_id'], ['egress_requests.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('request_id', 'path'),
    )
    op.create_index('ix_egress_files_request_id', 'egress_files', ['request_id'])
    op.create_table(
        'egress_reviews',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('file_id', sa.Integer(), nullable=False),
        sa.Column('reviewer', sa.String(length=64), nullable=False),
        sa.Column('decision', sa.Enum('approve', 'reject', 'changes_requested', name='decision',
                                      native_enum=False, length=24), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['file_id'], ['egress_files.id']),
        sa.ForeignKeyConstraint(['reviewer'], ['people.username']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('file_id', 'reviewer'),
    )
    op.create_index('ix_egress_reviews_file_id', 'egress_reviews', ['file_id'])
    op.create_table(
        'egress_comments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('request_id', sa.Integer(), nullable=False),
        sa.Column('file_id', sa.Integer(), nullable=True),
        sa.Column('author', sa.String(length=64), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('visible_to_researcher', sa.Boolean(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['author'], ['people.username']),
        sa.ForeignKeyConstraint(['file_id'], ['egress_files.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['request_id'], ['egress_requests.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_egress_comments_request_id', 'egress_comments', ['request_id'])


def downgrade() -> None:
    op.drop_index('ix_egress_comments_request_id', table_name='egress_comments')
    op.drop_table('egress_comments')
    op.drop_index('ix_egress_reviews_file_id', table_name='egress_reviews')
    op.drop_table('egress_reviews')
    op.drop_index('ix_egress_files_request_id', table_name='egress_files')
    op.drop_table('egress_files')
    op.drop_table('egress_groups')
    op.drop_index('ix_egress_requests_project_slug', table_name='egress_requests')
    op.drop_table('egress_requests')
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_constraint('ck_projects_egress_two_reviews', type_='check')
        batch_op.drop_column('egress_reviews_required')
