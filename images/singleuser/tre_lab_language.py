"""JupyterLab's language follows the browser's at each visit (``tre_workspace.LabLanguage`` calls
this before a JupyterLab page is served), until the researcher chooses one in Settings > Language.
No Jupyter import, so that the hub's tests can run it."""

from __future__ import annotations

import os

from tre_read_policy import negotiate

# JupyterLab's language setting, which tre-start-singleuser also writes at start. A setting without
# this first line is the researcher's own choice (Settings > Language) and is left alone.
LANGUAGE_MARKER = "// tre-start-singleuser: follows the browser's language until you choose one in Settings > Language"
LAB_LOCALES = {"fr": "fr_FR", "en": "en"}


def language_settings_file() -> str:
    root = os.environ.get("JUPYTERLAB_SETTINGS_DIR") or os.path.join(os.path.expanduser("~"), ".jupyter", "lab",
                                                                    "user-settings")
    return os.path.join(root, "@jupyterlab", "translation-extension", "plugin.jupyterlab-settings")


def follow_browser_language(accept_language: str | None, settings: str | None = None) -> bool:
    """Set JupyterLab's language to the browser's (French or English), unless the researcher
    chose one; True if the setting was written. Atomic (a rename), so a page loading at the same
    time reads the old setting or the new one."""
    settings = settings or language_settings_file()
    wanted = LAB_LOCALES[negotiate(accept_language)]
    content = f'{LANGUAGE_MARKER}\n{{\n    "locale": "{wanted}"\n}}\n'
    try:
        with open(settings, encoding="utf-8") as current:
            present = current.read()
    except FileNotFoundError:
        present = None
    if present == content or (present is not None and not present.startswith(LANGUAGE_MARKER)):
        return False
    os.makedirs(os.path.dirname(settings), exist_ok=True)
    with open(settings + ".tre-tmp", "w", encoding="utf-8") as written:
        written.write(content)
    os.replace(settings + ".tre-tmp", settings)
    return True
