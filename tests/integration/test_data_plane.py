"""The data plane in a real workspace: partitioned Parquet registered by manifest, extracted for
the project (a manifest of its own) and mounted, queried with DuckDB and pandas; a start right
after a hub restart reads no dataset file; the scrubber suspends a version changed in place and
the workspaces that mount its extracts stop."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from datasets import audit
from datasets.models import DatasetVersion, Extract, ExtractStatus, VersionStatus
from tests.integration.conftest import VENV_BIN, catalogue, running_hub, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def plane_hub(docker_client):
    with running_hub(docker_client, settings={"TRE_RECONCILE_INTERVAL": "2"}, scale=0.05) as hub:
        yield hub



def python_in(container, code: str) -> str:
    result = container.exec_run(["python3", "-c", code], user="1000:100")
    assert result.exit_code == 0, result.output.decode(errors="replace")
    return result.output.decode().strip()


def test_a_partitioned_dataset_is_queried_with_duckdb_and_pandas(plane_hub):
    hub = plane_hub
    with catalogue(hub) as session:
        claims = session.get(DatasetVersion, ("claims", "2024.1"))
        rows, root, partitions = claims.row_count, claims.root_hash, claims.tables["."]["partitions"]
    assert len(partitions) == 24 and rows == 10_000
    alice = hub.login("alice")
    container = hub.start(alice, "alice", "cardio-risk")
    with catalogue(hub) as session:
        extract = session.query(Extract).filter_by(project_id="cardio-risk", dataset_version_id="claims@2024.1",
                                                   status=ExtractStatus.READY).one()
        extract_root = extract.root_hash
    assert extract_root != root  # the project's extract: a manifest of its own
    try:
        assert int(python_in(container, "import duckdb; print(duckdb.sql(\"select count(*) from "
                                        "'/data/claims/**/*.parquet'\").fetchall()[0][0])")) == rows
        by_year = python_in(container, "import duckdb; print(duckdb.sql(\"select year, count(*) from "
                                       "'/data/claims/**/*.parquet' group by year order by year\").fetchall())")
        assert by_year.startswith("[(2022, ")
        assert int(python_in(container, "import pandas as pd; print(len(pd.read_parquet('/data/claims')))")) == rows
        one = python_in(container, "import pandas as pd; "
                                   "print(len(pd.read_parquet('/data/claims/year=2023/month=06/part-0.parquet')))")
        assert 0 < int(one) < rows
        # pandas hands Arrow a Python file object for one file, which made 1 script in 10 abort at its end
        # (exit 134): the image's tre_parquet_reads has it read by path. 20 runs of that script, each whole.
        loop = container.exec_run(["sh", "-c", "for i in $(seq 20); do python3 -c \"import pandas as pd; "
                                   "pd.read_parquet('/data/claims/year=2023/month=06/part-0.parquet')\" "
                                   "|| echo \"run $i: exit $?\"; done"], user="1000:100")
        assert loop.exit_code == 0 and not loop.output.strip(), loop.output.decode(errors="replace")
        doc = python_in(container, "print(open('/data/claims/_DATASET.md').read())")
        assert extract_root in doc and "# claims 2024.1" in doc and "| atc_code | string |" in doc
        assert "| person_id | int64 |" in doc and "patient_id" not in doc
        # JupyterLab opens at /project: the datasets are one click away, and a new project has a starter
        assert python_in(container, "import os; print(sorted(os.listdir('/project/data')))") == "['claims', 'hospital_stays']"
        result = container.exec_run(["jupyter", "nbconvert", "--to", "notebook", "--execute", "--stdout",
                                     "/project/starter.ipynb"], user="1000:100", workdir="/project", demux=True)
        assert result.exit_code == 0, (result.output[1] or b"").decode()[-3000:]
        executed = result.output[0].decode()
        assert "people" in executed and "error" not in executed.lower().split('"output_type"')[0]
    finally:
        hub.stop(alice, "alice", "cardio-risk")


def tamper_in_place(path: Path) -> None:
    """One byte flipped; size, inode and modification time kept: only reading finds it."""
    info = path.stat()
    with open(path, "r+b") as stream:
        stream.seek(info.st_size // 2)
        byte = stream.read(1)
        stream.seek(info.st_size // 2)
        stream.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def test_a_start_after_restart_reads_nothing_and_the_scrubber_stops_what_mounts_a_changed_version(plane_hub):
    hub = plane_hub
    alice = hub.login("alice")
    hub.start(alice, "alice", "cardio-risk")
    tamper_in_place(hub.home / "data" / "claims" / "year=2023" / "month=06" / "part-0.parquet")
    hub.stop_process()
    hub.start_process()
    # A start that re-hashed claims would refuse it now; the check compares path, size, inode and
    # mtime only, so bob's workspace starts (that the content changed is the scrubber's to find).
    bob = hub.login("bob")
    hub.start(bob, "bob", "diabetes-outcomes")
    scrub = subprocess.run([VENV_BIN / "tre", "datasets", "scrub"], env=hub.env, capture_output=True, text=True)
    assert scrub.returncode == 2, scrub.stdout + scrub.stderr
    assert "claims 2024.1: SUSPENDED: year=2023/month=06/part-0.parquet does not match" in scrub.stdout
    with catalogue(hub) as session:
        assert session.get(DatasetVersion, ("claims", "2024.1")).status is VersionStatus.SUSPENDED
    for user, project in (("alice", "cardio-risk"), ("bob", "diabetes-outcomes")):
        wait_for(lambda: not hub.client.containers.list(filters={"label": [
            f"tre.instance={hub.instance}", f"tre.user={user}", f"tre.project={project}"]}), 60,
            f"{user}'s workspace mounting the suspended version to stop")
    # The container goes during the hub's stop; the reconciler writes its row just after: wait for it.
    def reconciler_stops() -> set:
        with catalogue(hub) as session:
            return {(e.details.get("user"), e.details.get("reason")) for e in audit.events(session)
                    if e.action == "workspace.stop" and e.actor == "reconciler"}
    wanted = {("alice", "dataset_suspended"), ("bob", "dataset_suspended")}
    wait_for(lambda: wanted <= reconciler_stops(), 30, "the reconciler's audit rows for both stops")
    with catalogue(hub) as session:
        assert any(e.action == "dataset.suspended" and e.actor == "scrubber" for e in audit.events(session))
    refused = hub.press_start(bob, "bob", "diabetes-outcomes")
    assert refused.status_code == 403 and "Dataset claims 2024.1 is suspended" in refused.text
