"""JupyterLab's language follows the browser at each visit (images/singleuser/tre_lab_language.py),
until the researcher picks one in Settings > Language."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "images" / "singleuser"))
from tre_lab_language import LANGUAGE_MARKER, follow_browser_language  # noqa: E402


def test_each_visit_sets_the_language_of_its_browser(tmp_path):
    settings = tmp_path / "translation-extension" / "plugin.jupyterlab-settings"
    assert follow_browser_language("fr-FR,fr;q=0.9", str(settings))
    assert '"locale": "fr_FR"' in settings.read_text()
    assert not follow_browser_language("fr-FR", str(settings))  # the same language: nothing written
    assert follow_browser_language("en-GB,en;q=0.9", str(settings))
    assert '"locale": "en"' in settings.read_text() and settings.read_text().startswith(LANGUAGE_MARKER)
    assert not list(settings.parent.glob("*.tre-tmp"))


def test_a_language_the_researcher_chose_is_kept(tmp_path):
    settings = tmp_path / "plugin.jupyterlab-settings"
    settings.write_text('{\n    "locale": "en"\n}\n')  # written by JupyterLab's Settings > Language
    assert not follow_browser_language("fr-FR", str(settings))
    assert settings.read_text() == '{\n    "locale": "en"\n}\n'


def test_the_start_script_writes_the_same_setting(tmp_path):
    # tre-start-singleuser writes it at start; an unchanged language is then not rewritten at the visit
    script = (Path(__file__).resolve().parents[2] / "images" / "singleuser" / "tre-start-singleuser.sh").read_text()
    assert f'marker="{LANGUAGE_MARKER}"' in script
