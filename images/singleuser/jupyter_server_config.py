"""Jupyter Server settings of every workspace (read from the image's venv, not the user's home)."""

c = get_config()  # noqa: F821
c.ServerApp.contents_manager_class = "tre_workspace.NoUploadContentsManager"
c.ContentsManager.files_handler_class = "tre_workspace.DownloadsOffHandler"
c.ContentsManager.allow_hidden = False
# Terminals stay: researchers use the shell; the workspace's walls do not depend on them.
