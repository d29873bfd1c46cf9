"""``tre check`` inside the analysis image: a researcher checks a table and a text before
submitting, with no network and no catalogue, identifier leaks found through an index file."""

from __future__ import annotations

import json
import os
import secrets

import pytest

from egress_review.checks.identifiers import IdentifierIndex

pytestmark = pytest.mark.integration
IMAGE = os.environ.get("TRE_TEST_SINGLEUSER_IMAGE", "tre/singleuser:latest")  # another build, to try it first


def run_in_image(client, folder, *command: str, environment: dict[str, str] | None = None) -> tuple[int, str]:
    instance = f"tre-checks-{secrets.token_hex(4)}"
    container = client.containers.run(IMAGE, list(command), detach=True, network_mode="none", environment=environment,
                                      labels={"tre.instance": instance, "tre.component": "checks-test"},
                                      volumes={str(folder): {"bind": "/check", "mode": "ro"}}, user="1000:100")
    try:
        status = container.wait(timeout=120)["StatusCode"]
        return status, container.logs(stdout=True, stderr=True).decode()
    finally:
        container.remove(force=True)


def test_tre_check_in_the_image_flags_the_small_cell_and_the_identifier(docker_client, tmp_path):
    tmp_path.chmod(0o755)
    (tmp_path / "small.csv").write_text("region,n\n11,4\n84,37\n")
    (tmp_path / "notes.txt").write_text("outlier: P0042\n")
    IdentifierIndex.of_values(["P0042"]).save(tmp_path / "ids.arrow")
    for path in tmp_path.iterdir():
        path.chmod(0o644)
    status, output = run_in_image(docker_client, tmp_path, "tre", "check", "/check/small.csv", "/check/notes.txt",
                                  "--index", "/check/ids.arrow", "--json")
    assert status == 1, output
    report = json.loads(output)
    by_file = {f["path"]: {r["rule"]: r for r in f["results"]} for f in report["files"]}
    assert by_file["/check/small.csv"]["threshold"]["details"]["cells"] == [
        {"row": 1, "col": 1, "value": "4", "label": "11", "column": "n"}]  # the row's label and column, for the page
    assert by_file["/check/notes.txt"]["identifier-leak"]["status"] == "fail"
    status, output = run_in_image(docker_client, tmp_path, "tre", "catalogue", "projects")
    assert status == 64 and "tre check" in output


def test_tre_check_in_the_image_speaks_the_workspaces_language(docker_client, tmp_path):
    """The spawner gives the workspace the browser's language (TRE_UI_LANGUAGE); the image's locale
    is C.UTF-8, so ``tre check`` follows TRE_UI_LANGUAGE, reading the French catalogue shipped with it."""
    tmp_path.chmod(0o755)
    (tmp_path / "small.csv").write_text("region,n\n11,4\n84,37\n")
    (tmp_path / "small.csv").chmod(0o644)
    status, output = run_in_image(docker_client, tmp_path, "tre", "check", "/check/small.csv",
                                  environment={"TRE_UI_LANGUAGE": "fr"})
    assert status == 1, output
    assert "/check/small.csv: NON CONFORME" in output
    assert "[non conforme] threshold: 1 cellule(s) ont un effectif inférieur à 10 (effectif minimal)" in output


def test_check_in_a_notebook_of_the_image_shows_the_table_with_the_flagged_cell(docker_client, tmp_path):
    """The researcher's way before an export request: a notebook cell ending in ``check(...)``
    shows the table with the failing count highlighted, in the workspace's language."""
    import nbformat

    tmp_path.chmod(0o755)
    (tmp_path / "small.csv").write_text("region,n\n11,4\n84,37\n")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from egress_review.checks.notebook import check\ncheck('/check/small.csv')")])
    nbformat.write(notebook, tmp_path / "check.ipynb")
    for path in tmp_path.iterdir():
        path.chmod(0o644)
    status, output = run_in_image(docker_client, tmp_path, "jupyter", "nbconvert", "--to", "notebook", "--execute",
                                  "--stdout", "/check/check.ipynb", environment={"TRE_UI_LANGUAGE": "fr",
                                                                                 "HOME": "/tmp"})
    assert status == 0, output
    executed = nbformat.reads(output[output.index("{"):], as_version=4)
    html = executed.cells[0].outputs[0]["data"]["text/html"]
    assert 'data-flagged="fail" title="threshold">4</td>' in html and "NON CONFORME" in html
