"""The egress review: the airlock through which results leave the enclave, after two blind reviews.

A JupyterHub service at ``/services/egress/`` (``python -m egress_review``). The workflow is in
``workflow`` (states and transitions) and ``permissions`` (who may act); ``requests`` is the one
layer that changes anything, used by the pages and the JSON API alike.
"""
