"""In the workspace image: only the egress review's automatic checks (``egress_review.checks``).

``checks/`` is the repository's ``egress_review/checks`` itself, put into the build context by
``images/build.py`` at each build, so a researcher runs the very rules the checkers' service runs.
"""
