"""The opt-out register: people who objected, by database pseudonym (never a name), with the date.

New extracts leave them out; ready extracts that still hold them are rebuilt (``jobs.rebuild_for_optouts``).
Every change is an audit row; what anyone is shown is a count.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datasets import audit
from datasets.audit import AuditAction
from datasets.models import OptOut
from datasets.workflow import require_steward

PERSON_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class OptOutError(ValueError):
    """An objection that cannot be recorded; nothing was recorded."""


def _checked(person_key: str, where: str = "") -> str:
    key = person_key.strip()
    if not PERSON_KEY.match(key):
        raise OptOutError(f"{where}{person_key!r} is not a database pseudonym (1 to 64 letters, digits, "
                          "'_', '.', ':' or '-'); give the pseudonym, never a name. Nothing was recorded.")
    return key


def add(session: Session, actor: str, person_keys: list[tuple[str, dt.date]], source: str) -> int:
    """Record objections ``(pseudonym, objected on)``; one already on the register is left as it is.
    Returns how many are new; one audit row per new objection, without the pseudonym."""
    require_steward(session, actor)
    known = set(session.scalars(select(OptOut.person_key).where(OptOut.person_key.in_([k for k, _ in person_keys]))))
    now, added = dt.datetime.now(dt.UTC), 0
    for key, objected_on in person_keys:
        if key in known:
            continue
        known.add(key)
        row = OptOut(person_key=key, objected_on=objected_on, recorded_at=now, recorded_by=actor, source=source[:200])
        session.add(row)
        session.flush()
        audit.record(session, actor, AuditAction.OPTOUT_ADDED,
                     details={"optout": row.id, "objected_on": objected_on.isoformat(), "source": source[:200]})
        added += 1
    return added


def read_file(path: Path, default_date: dt.date) -> list[tuple[str, dt.date]]:
    """A file of objections: one pseudonym a line, or CSV ``pseudonym,YYYY-MM-DD`` (a header line
    ``person_key,objected_on`` may come first). Every line is checked before anything is recorded."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError) as exc:
        raise OptOutError(f"{path} cannot be read ({exc}); give a text file of pseudonyms. Nothing was recorded.") from None
    rows = []
    for number, fields in enumerate(csv.reader(text.splitlines()), start=1):
        if not fields or not "".join(fields).strip():
            continue
        if number == 1 and fields[0].strip().lower() in ("person_key", "pseudonym", "patient_id"):
            continue
        if len(fields) > 2:
            raise OptOutError(f"{path}:{number}: more than two fields; write pseudonym[,YYYY-MM-DD]. Nothing was recorded.")
        key = _checked(fields[0], f"{path}:{number}: ")
        try:
            day = dt.date.fromisoformat(fields[1].strip()) if len(fields) == 2 and fields[1].strip() else default_date
        except ValueError:
            raise OptOutError(f"{path}:{number}: {fields[1]!r} is not a date (YYYY-MM-DD). Nothing was recorded.") from None
        rows.append((key, day))
    return rows


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(OptOut)) or 0


def checked_key(person_key: str) -> str:
    return _checked(person_key)
