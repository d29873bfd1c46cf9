"""Building one extract: DuckDB reads the granted partitions of the dataset version, joins them to
the project's distinct-person table and writes partitioned Parquet, outside any event loop.

The extract is built in ``<TRE_EXTRACTS_ROOT>/<project>/.building-<id>/``, which nothing mounts:
each partition is written to a temporary name and renamed, so a partition present under its own
name is done, and a run that takes over a dead build (``take_over``, once its heartbeat is older
than ``TRE_EXTRACT_STALE_SECONDS``) does only the partitions still missing. Last comes the
manifest (``datasets.manifest``: every file hashed, one root hash, ``_DATASET.md`` for the
researcher), kept beside the folder, and the folder takes the place of ``<dataset>@<version>/`` in
one atomic exchange: a workspace mounts the previous extract or the new one, never half of one.

While it runs, a thread sends heartbeats with the progress (0-100) to the extract's row; when the
row says another run took the build over, this run stops without touching anything else.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import json
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from datasets import audit
from datasets.audit import AuditAction
from datasets.manifest import build_manifest, make_read_only, verify_tree, walk
from datasets.models import DatasetVersion, Extract, ExtractStatus, Grant, OptOut, version_key
from extracts import pseudonyms
from extracts.jobs import ACTOR, optout_generation, spec_of
from extracts.plan import Plan, files_sql, make_plan, people_sql, q, unit_sql
from tre_core.db import session_scope
from tre_core.files import fsync_path
from tre_core.settings import TRESettings


class BuildError(RuntimeError):
    """An extract that cannot be built now; the message says why and what to do."""


def project_folder(settings: TRESettings, project: str) -> Path:
    return settings.extracts_root / project


def building_folder(settings: TRESettings, extract: Extract) -> Path:
    return project_folder(settings, extract.project_id) / f".building-{extract.id}"


def final_folder(settings: TRESettings, extract: Extract) -> Path:
    return project_folder(settings, extract.project_id) / extract.dataset_version_id


def manifest_file(settings: TRESettings, extract: Extract) -> Path:
    """The extract's manifest (files with size, sha256, inode, mtime; tables; root hash), beside it."""
    return project_folder(settings, extract.project_id) / f".manifest-{extract.id}.json"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    return moment.replace(tzinfo=dt.UTC) if moment is not None and moment.tzinfo is None else moment


@dataclass
class _Job:
    extract_id: int
    project: str
    dataset: str
    version: str
    grant_id: int
    data_folder: Path
    files: list
    plan: Plan
    generation: int
    optouts: list[str]


def _claim(session: Session, extract_id: int, take_over: bool, settings: TRESettings) -> Extract | None:
    """Make this run the extract's builder, by a conditional UPDATE; None when it is built already."""
    extract = session.get(Extract, extract_id)
    if extract is None:
        raise BuildError(f"There is no extract {extract_id}; `tre extracts list` lists them.")
    if extract.status in (ExtractStatus.READY, ExtractStatus.SUPERSEDED):
        return None
    if extract.status is ExtractStatus.QUEUED and _twin(session, extract) is not None:
        # queued twice (a start and the extraction service at once): building it again would only
        # replace an identical extract and stop the workspaces that mount it
        extract.status, extract.error = ExtractStatus.SUPERSEDED, "an identical extract is ready or being built"
        session.flush()
        return None
    now = _now()
    condition = [Extract.id == extract_id, Extract.status == extract.status]
    if extract.status is ExtractStatus.BUILDING:
        heartbeat = _aware(extract.heartbeat_at)
        age = (now - heartbeat).total_seconds() if heartbeat else float("inf")
        if not take_over:
            raise BuildError(f"Extract {extract_id} is being built by another run (last heartbeat {age:.0f} s ago); "
                             "if that run died, build it again with --take-over.")
        if age < settings.extract_stale_seconds:
            raise BuildError(f"Extract {extract_id} is being built by a run that sent a heartbeat {age:.0f} s ago; "
                             f"a build is taken over only after {settings.extract_stale_seconds:.0f} s of silence.")
        condition.append(Extract.heartbeat_at == extract.heartbeat_at)
    values = {"status": ExtractStatus.BUILDING, "heartbeat_at": now, "error": None}
    if extract.started_at is None:  # the first run fixes which opt-outs this build leaves out
        values |= {"started_at": now, "optout_generation": optout_generation(session)}
    done = session.execute(update(Extract).where(*condition).values(**values)
                           .execution_options(synchronize_session=False)).rowcount
    if done != 1:
        raise BuildError(f"Extract {extract_id} was claimed by another run at the same moment; let it finish.")
    session.refresh(extract)
    return extract


def _twin(session: Session, extract: Extract) -> int | None:
    """An earlier extract of the same project, version and spec that serves as well as this one
    would: ready and holding no one who objected since, or queued or being built before it."""
    same = [Extract.project_id == extract.project_id, Extract.dataset_version_id == extract.dataset_version_id,
            Extract.spec_digest == extract.spec_digest, Extract.id < extract.id]
    return session.scalar(select(Extract.id).where(*same, or_(
        Extract.status.in_((ExtractStatus.QUEUED, ExtractStatus.BUILDING)),
        and_(Extract.status == ExtractStatus.READY,
             Extract.optout_generation >= optout_generation(session)))).limit(1))


def _job(session: Session, extract: Extract, settings: TRESettings) -> _Job:
    grant = session.get(Grant, extract.grant_id) if extract.grant_id else None
    if grant is None:
        raise BuildError(f"The grant extract {extract.id} served was removed; nothing is built for it.")
    version = session.get(DatasetVersion, (extract.dataset_slug, extract.version))
    if version is None:
        raise BuildError(f"Dataset version {extract.dataset_version_id} is not registered.")
    spec = spec_of(session, grant)
    if spec.digest() != extract.spec_digest:
        raise BuildError(f"The grant's spec changed since extract {extract.id} was queued; "
                         "`tre extracts build` queues the extract of its new spec.")
    folder = settings.data_root / version.storage_path
    verify_tree(folder, version.files)  # the data are what was registered (stat only, nothing read)
    optouts = list(session.scalars(select(OptOut.person_key).where(OptOut.id <= extract.optout_generation)))
    return _Job(extract.id, extract.project_id, extract.dataset_slug, extract.version, grant.id, folder,
                version.files, make_plan(spec, version.tables, version.files, str(folder)),
                extract.optout_generation, optouts)


class _Heartbeat(threading.Thread):
    """Tells the row this run is alive, with its progress; notices when another run took over."""

    def __init__(self, url: str, extract_id: int, interval: float) -> None:
        super().__init__(daemon=True, name=f"extract-{extract_id}-heartbeat")
        self.url, self.extract_id, self.interval = url, extract_id, interval
        self.progress, self.lost = 0, False
        self.stopping = threading.Event()

    def beat(self) -> None:
        with session_scope(self.url) as session:
            done = session.execute(update(Extract).where(Extract.id == self.extract_id,
                                                         Extract.status == ExtractStatus.BUILDING)
                                   .values(heartbeat_at=_now(), progress=self.progress)
                                   .execution_options(synchronize_session=False)).rowcount
        self.lost = self.lost or done != 1

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self.beat()
            except Exception:  # noqa: BLE001 - a missed heartbeat is retried at the next one
                pass


def run(extract_id: int, *, take_over: bool = False, progress: Callable[[int], None] | None = None) -> None:
    """Build extract ``extract_id`` (or finish a dead run's build with ``take_over``); nothing to do if it is
    ready. Raises ``BuildError`` when it cannot, after recording the failure on the row and in the audit log.
    ``progress(percent)`` is called as partitions are written (the row gets it with each heartbeat)."""
    settings = TRESettings()
    url = settings.catalogue_url
    with session_scope(url) as session:
        extract = _claim(session, extract_id, take_over, settings)
        if extract is None:
            return
        try:
            job = _job(session, extract, settings)
        except Exception as exc:
            job, problem = None, exc
    if job is None:
        _failed(url, extract_id, problem)
        raise problem if isinstance(problem, BuildError) else BuildError(str(problem)) from problem
    heartbeat = _Heartbeat(url, extract_id, settings.extract_heartbeat_seconds)
    heartbeat.start()
    try:
        result = _build(job, settings, heartbeat, progress or (lambda percent: None))
    except _TakenOver:
        return
    except Exception as exc:
        _failed(url, extract_id, exc)
        raise BuildError(f"Extract {extract_id} failed: {exc}") from exc
    finally:
        heartbeat.stopping.set()
        heartbeat.join()
    _finish(url, job, result, settings)


class _TakenOver(Exception):
    pass


def _connect(job: _Job, key: bytes):
    import duckdb
    import pyarrow as pa

    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    ipad, opad = pseudonyms.pads(key)
    con.execute("CREATE TEMP TABLE hk AS SELECT ?::BLOB AS ipad, ?::BLOB AS opad", [ipad, opad])
    optouts = pa.table({"person_key": pa.array(job.optouts, pa.string())})
    con.register("optouts_arrow", optouts)
    con.execute("CREATE TEMP TABLE optouts AS SELECT person_key FROM optouts_arrow")
    con.unregister("optouts_arrow")
    plan = job.plan
    if plan.spec.linkage:
        study = next(t.study_key for t in plan.tables + plan.criteria_tables if t.study_key)
        con.execute(f"CREATE TEMP TABLE linkage AS SELECT DISTINCT {q(study)}, {q(plan.linkage_person_key)} "
                    f"FROM {files_sql(list(plan.linkage_sources))}")
    return con


def _build(job: _Job, settings: TRESettings, heartbeat: _Heartbeat, progress: Callable[[int], None]) -> dict:
    key = pseudonyms.project_key(settings.secrets_dir, job.project)
    folder = project_folder(settings, job.project) / f".building-{job.extract_id}"
    _after_a_swap_cut_short(settings, job, folder)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(project_folder(settings, job.project), 0o755)
    for leftover in folder.rglob("*.tmp"):  # a dead run's partition half-written
        leftover.unlink()
    con = _connect(job, key)
    plan = job.plan
    total = len(plan.units) + 2  # the people table, the partitions, the manifest
    con.execute(people_sql(plan))
    counts = {"people": con.execute("SELECT count(*) FROM people").fetchone()[0]}
    counts |= _linkage_counts(con, plan)
    heartbeat.progress = int(100 / total)
    progress(heartbeat.progress)
    for done, unit in enumerate(plan.units, start=2):
        if heartbeat.lost:
            raise _TakenOver()
        target = folder / unit.output
        if not _whole(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(target.name + ".tmp")
            con.execute(f"COPY ({unit_sql(plan, unit)}) TO '{temporary}' (FORMAT parquet, COMPRESSION zstd)")
            os.replace(temporary, target)  # its name under the folder is the partition's done-marker
            if settings.extract_test_slow_partition:
                time.sleep(settings.extract_test_slow_partition)
        heartbeat.progress = min(99, int(100 * done / total))
        progress(heartbeat.progress)
    con.close()
    if not plan.units:
        raise BuildError("the grant selects no file of the dataset version (its period holds no partition); "
                         "amend the grant's period.")
    os.sync()  # one flush of every partition before the manifest, rather than one per file
    manifest = build_manifest(folder, describe=(job.dataset, job.version))
    make_read_only(folder)
    return {"manifest": manifest, "folder": folder, **counts}


def _after_a_swap_cut_short(settings: TRESettings, job: _Job, folder: Path) -> None:
    """A run that died in ``_finish`` after swapping this build in left the *previous* extract in
    the build folder (or aside in ``.superseded-<id>``): its partitions must never pass for this
    build's (they may hold people who objected since). The final folder matching this build's
    manifest says the swap happened: the leftover goes, and the build is made again from nothing."""
    from datasets.manifest import TreeChanged

    base = project_folder(settings, job.project)
    remove_tree(base / f".superseded-{job.extract_id}")
    record = base / f".manifest-{job.extract_id}.json"
    final = base / version_key(job.dataset, job.version)
    if not (folder.is_dir() and record.is_file() and final.is_dir()):
        return
    try:
        verify_tree(final, json.loads(record.read_text())["files"])
    except (TreeChanged, ValueError, KeyError):
        return  # not swapped: the folder is this build's own, its partitions done so far kept
    remove_tree(folder)


def _whole(path: Path) -> bool:
    """A partition a run renamed into place: done, unless a crash of the machine (not of the process,
    whose writes the kernel keeps) left it without its Parquet footer; then it is written again."""
    if not path.exists():
        return False
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
        return True
    except Exception:  # noqa: BLE001 - any unreadable footer means: write it again
        path.unlink()
        return False


def _linkage_counts(con, plan: Plan) -> dict:
    """For a linked cohort: its people (study ids) and how many the linkage table found."""
    linked_tables = [t for t in plan.tables if t.study_key and plan.sources.get(t.name)]
    if not plan.spec.linkage or not linked_tables:
        return {"linked": None, "cohort_people": None}
    from extracts.plan import period_filter

    ids = " UNION ".join(f"SELECT DISTINCT t.{q(t.study_key)} AS study FROM {files_sql(list(plan.sources[t.name]))} t "
                         f"WHERE {period_filter(t, plan.spec)}" for t in linked_tables)
    key = linked_tables[0].study_key
    cohort, linked = con.execute(f"SELECT count(*), count(l.{q(key)}) FROM ({ids}) c "
                                 f"LEFT JOIN (SELECT DISTINCT {q(key)} FROM linkage) l ON c.study = l.{q(key)}").fetchone()
    return {"linked": linked, "cohort_people": cohort}


def _exchange(new: Path, old: Path) -> None:
    """Put ``new`` in the place of ``old`` in one step (renameat2 RENAME_EXCHANGE); ``new``'s path then
    holds the previous extract, which the caller removes."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(-100, os.fsencode(new), -100, os.fsencode(old), 2) != 0:  # AT_FDCWD, RENAME_EXCHANGE
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(old))


def remove_tree(folder: Path) -> None:
    """Remove an extract folder made read-only (folders 0555 are writable again first)."""
    if not folder.exists():
        return
    for path, info in walk(folder).items():
        if stat.S_ISDIR(info.st_mode):
            os.chmod(folder / path, 0o755)
    os.chmod(folder, 0o755)
    shutil.rmtree(folder)


def _finish(url: str, job: _Job, result: dict, settings: TRESettings) -> None:
    manifest, folder = result["manifest"], result["folder"]
    with session_scope(url) as session:
        extract = session.get(Extract, job.extract_id)
        if extract.status is not ExtractStatus.BUILDING:
            return  # taken over at the last moment: the other run finishes it
        final = final_folder(settings, extract)
        record = manifest_file(settings, extract)
        temporary = record.with_name(record.name + ".tmp")
        temporary.write_text(json.dumps({"extract": extract.id, "root_hash": manifest.root_hash,
                                         "files": manifest.rows(), "tables": manifest.tables}, default=list))
        os.replace(temporary, record)
        if final.exists():
            try:
                _exchange(folder, final)
            except OSError:  # a file system without RENAME_EXCHANGE: aside, then in, a moment apart
                aside = final.with_name(f".superseded-{extract.id}")
                os.rename(final, aside)
                os.rename(folder, final)
                folder = aside
            remove_tree(folder)  # the previous extract: its opted-out people leave the disk now
        else:
            os.rename(folder, final)
        fsync_path(final.parent)
        previous = session.scalars(select(Extract).where(
            Extract.project_id == extract.project_id, Extract.dataset_version_id == extract.dataset_version_id,
            Extract.status == ExtractStatus.READY, Extract.id != extract.id)).all()
        for old in previous:
            old.status = ExtractStatus.SUPERSEDED
            manifest_file(settings, old).unlink(missing_ok=True)
        extract.status, extract.progress, extract.finished_at = ExtractStatus.READY, 100, _now()
        extract.heartbeat_at, extract.root_hash = _now(), manifest.root_hash
        extract.path = f"{extract.project_id}/{extract.dataset_version_id}"
        extract.people, extract.linked, extract.cohort_people = result["people"], result["linked"], result["cohort_people"]
        audit.record(session, ACTOR, AuditAction.EXTRACT_BUILT, project=extract.project_id, details={
            "extract": extract.id, "grant": job.grant_id, "dataset": job.dataset, "version": job.version,
            "spec_digest": extract.spec_digest, "root_hash": manifest.root_hash, "files": len(manifest.files),
            "rows": manifest.row_count, "people": extract.people, "linked": extract.linked,
            "cohort_people": extract.cohort_people, "optout_generation": job.generation,
            "superseded": [old.id for old in previous]})


def _failed(url: str, extract_id: int, problem: Exception) -> None:
    with session_scope(url) as session:
        extract = session.get(Extract, extract_id)
        done = session.execute(update(Extract).where(Extract.id == extract_id, Extract.status == ExtractStatus.BUILDING)
                               .values(status=ExtractStatus.FAILED, error=str(problem)[:2000], finished_at=_now())
                               .execution_options(synchronize_session=False)).rowcount
        if done == 1:
            audit.record(session, ACTOR, AuditAction.EXTRACT_FAILED, project=extract.project_id, details={
                "extract": extract_id, "grant": extract.grant_id, "dataset_version": extract.dataset_version_id,
                "error": str(problem)[:500]})


def build_pending(*, take_over: bool = True, retry_failed: bool = True) -> tuple[list[int], dict[int, str]]:
    """Queue what grants and opt-outs need (failed builds again too, unless ``retry_failed`` is
    false), then build every pending extract, oldest first; one failure (recorded on its row) does
    not stop the others. Returns (built, {failed: why})."""
    from extracts import jobs

    url = TRESettings().catalogue_url
    with session_scope(url) as session:
        jobs.enqueue_missing(session, retry_failed=retry_failed)
        jobs.rebuild_for_optouts(session, retry_failed=retry_failed)
        ids = [e.id for e in jobs.pending(session)]
    built, failed = [], {}
    for extract_id in ids:
        try:
            run(extract_id, take_over=take_over)
            built.append(extract_id)
        except BuildError as exc:
            failed[extract_id] = str(exc)
    return built, failed


def verify(settings: TRESettings, extract: Extract) -> Path:
    """Before a mount: the ready extract's folder, compared with its manifest by path, size, inode and
    modification time (nothing read); raises ``datasets.manifest.TreeChanged`` naming what differs."""
    from datasets.manifest import TreeChanged

    record = manifest_file(settings, extract)
    if extract.status is not ExtractStatus.READY or not record.is_file():
        raise TreeChanged(f"extract {extract.id} is {extract.status.value}, not ready")
    manifest = json.loads(record.read_text())
    if manifest["root_hash"] != extract.root_hash:
        raise TreeChanged(f"the manifest beside extract {extract.id} is not the one recorded")
    folder = final_folder(settings, extract)
    verify_tree(folder, manifest["files"])
    return folder
