"""The in-enclave package index (issue 17): pip in a workspace installs approved packages only.

Server: pypiserver, not devpi-server. Both are maintained and on PyPI. devpi-server's core is an
on-demand mirror of PyPI (``root/pypi``) with its own replicated database of indexes, users and
uploads: here a mirror is exactly what must not exist (the index must never fetch on a workspace's
behalf), and its state would be a second store beside the catalogue. pypiserver serves PEP 503
pages and files straight from folders, with its PyPI fallback switchable off
(``disable_fallback``), hashes in its links (``hash_algo="sha256"``), no database and little
memory; it is a WSGI app, so the TRE runs it inside its own gate (``service.py``), which decides
per project what may be served. What is served is whatever the TRE published into those folders,
atomically and hash-checked (``store.py``), after an admin's approval (``workflow.py``), fetched on
the host (``fetch.py``).

Imports datasets only (catalogue models, audit, settings); never spawner, egress_review or hub.
"""
