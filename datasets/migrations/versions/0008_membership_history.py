"""membership history: who is or ever was a member of which project, with the dates

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 17:30:00

"Which projects is this person tied to?" (an output checker may not review them; a steward may
not decide on them) was answered by scanning every ``member.added`` row of the audit log on each
request. The catalogue keeps the answer instead: one row per membership, with when it began and
ended, written by the workflow acts. This migration fills it once from what is known: the current
memberships (open rows) and the audit log's member.added / member.removed rows.
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'membership_history',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_slug', sa.String(length=64), nullable=False),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('role', sa.String(length=32), nullable=False),
        sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('added_by', sa.String(length=64), nullable=False),
        sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('removed_by', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(['project_slug'], ['projects.slug'], name='fk_membership_history_project_slug_projects'),
        sa.PrimaryKeyConstraint('id', name='pk_membership_history'),
    )
    op.create_index('ix_membership_history_username', 'membership_history', ['username'])
    _fill_from_what_is_known()


def _fill_from_what_is_known() -> None:
    import datetime as dt
    import json

    connection = op.get_bind()
    now = dt.datetime.now(dt.timezone.utc)
    history = sa.table('membership_history', *(sa.column(c) for c in (
        'project_slug', 'username', 'role', 'added_at', 'added_by', 'removed_at', 'removed_by')))
    rows, current = [], set()
    for project, username, role in connection.execute(sa.text(
            "SELECT project_slug, username, role FROM memberships")):
        current.add((project, username))
        rows.append({'project_slug': project, 'username': username, 'role': role, 'added_at': now,
                     'added_by': 'migration 0008', 'removed_at': None, 'removed_by': None})
    projects = {slug for (slug,) in connection.execute(sa.text("SELECT slug FROM projects"))}
    events = connection.execute(sa.text(
        "SELECT at, actor, action, project, details FROM audit_events "
        "WHERE action IN ('member.added', 'member.removed') ORDER BY seq"))
    past: dict[tuple[str, str], dict] = {}
    for at, actor, action, project, details in events:
        details = details if isinstance(details, dict) else json.loads(details or '{}')
        key = (project, (details or {}).get('user'))
        if not key[1] or project not in projects or key in current:
            continue
        when = dt.datetime.fromisoformat(at)
        if action == 'member.added':
            past[key] = {'project_slug': project, 'username': key[1], 'role': details.get('role', 'researcher'),
                         'added_at': when, 'added_by': actor, 'removed_at': now, 'removed_by': 'migration 0008'}
        elif key in past:
            past[key].update(removed_at=when, removed_by=actor)
    rows += past.values()
    if rows:
        op.bulk_insert(history, rows)


def downgrade() -> None:
    op.drop_index('ix_membership_history_username', table_name='membership_history')
    op.drop_table('membership_history')
