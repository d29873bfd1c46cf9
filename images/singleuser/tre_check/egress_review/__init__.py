"""In the workspace image: only the egress review's automatic checks (``egress_review.checks``).

The files under ``checks/`` are copies of the repository's ``egress_review/checks`` (a unit test
fails when they differ; refresh them with ``cp egress_review/checks/*.py
images/singleuser/tre_check/egress_review/checks/``), so a researcher runs the very rules the
checkers' service runs.
"""
