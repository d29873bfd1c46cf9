"""The egress review: the airlock through which results leave the enclave, after two blind reviews.

A JupyterHub service at ``/services/egress/`` (``python -m egress_review``), in the shape of
OpenSAFELY Airlock: ``policies`` holds every state rule (the transition table, what each state
allows, blind review, the release preconditions), ``permissions`` who may act, ``logic`` the one
layer that changes anything (reading in ``reading`` and ``views``), ``data_access`` the SQL,
``submission`` freezing and the automatic ``checks``; ``release`` writes the signed record;
``app`` assembles the pages (``pages``) and the JSON API (``api``) on the shared handler (``site``).
"""
