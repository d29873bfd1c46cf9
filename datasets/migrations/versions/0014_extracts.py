"""extracts engine: a grant's spec, per-project extracts and the opt-out register

Revision ID: 0014
Revises: 0012a
Create Date: 2026-12-05 07:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0012a'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Grants recorded before specs keep None: the whole dataset (datasets/grant_spec.py whole_dataset).
    with op.batch_alter_table('grants') as batch:
        batch.add_column(sa.Column('spec', sa.JSON(), nullable=True))
    op.create_table(
        'extracts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.String(length=64), nullable=False),
        sa.Column('dataset_version_id', sa.String(length=100), nullable=False),
        sa.Column('grant_id', sa.Integer(), nullable=True),
        sa.Column('spec_digest', sa.String(length=64), nullable=False),
        sa.Column('status', sa.Enum('queued', 'building', 'ready', 'failed', 'superseded', name='extractstatus',
                                    native_enum=False, length=16), nullable=False),
        sa.Column('progress', sa.Integer(), nullable=False),
        sa.Column('path', sa.String(length=500), nullable=True),
        sa.Column('root_hash', sa.String(length=64), nullable=True),
        sa.Column('people', sa.BigInteger(), nullable=True),
        sa.Column('linked', sa.BigInteger(), nullable=True),
        sa.Column('cohort_people', sa.BigInteger(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('optout_generation', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['project_id'], ['projects.slug'], name='fk_extracts_project_id_projects'),
        sa.ForeignKeyConstraint(['grant_id'], ['grants.id'], name='fk_extracts_grant_id_grants', ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_extracts_project_id', 'extracts', ['project_id'])
    op.create_table(
        'optouts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('person_key', sa.String(length=64), nullable=False),
        sa.Column('objected_on', sa.Date(), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('recorded_by', sa.String(length=64), nullable=False),
        sa.Column('source', sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('person_key', name='uq_optouts_person_key'),
    )


def downgrade() -> None:
    op.drop_table('optouts')
    op.drop_index('ix_extracts_project_id', table_name='extracts')
    op.drop_table('extracts')
    with op.batch_alter_table('grants') as batch:
        batch.drop_column('spec')
