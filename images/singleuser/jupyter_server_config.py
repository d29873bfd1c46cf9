"""Jupyter Server settings of every workspace, read from the image's venv (etc/jupyter).

With JUPYTERHUB_DISABLE_USER_CONFIG=1 (set in the image) nothing in the home folder overrides them.
"""

c = get_config()  # noqa: F821
# Saves of uploaded files (base64, chunked) are refused; notebooks and text files save as usual.
# A file's content reaches the browser only if JupyterLab renders it (notebook, text, image), under
# TRE_READ_MAX_BYTES, each read recorded by the hub against the person's daily volume.
c.ServerApp.contents_manager_class = "tre_file_reads.ReadGuardContentsManager"
# /files/ (raw downloads, "open in a new browser tab") answers 403; tre_workspace, enabled as a
# server extension by jupyter_server_config.d/tre_workspace.json, does the same for /nbconvert/.
c.ContentsManager.files_handler_class = "tre_workspace.DownloadsOffHandler"
c.ContentsManager.allow_hidden = False

# The server enforces the locks above, and researcher code runs as the same user beside it: a
# dumpable process of the same uid can be rewritten through /proc/<pid>/mem with no ptrace call
# at all. Not dumpable, its /proc entries belong to root and only the process itself reads them.
# Kernels and terminals it starts are dumpable again (execve resets the flag), as they should be.
import ctypes  # noqa: E402

PR_SET_DUMPABLE = 4
if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
    raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed: the server would be patchable")
