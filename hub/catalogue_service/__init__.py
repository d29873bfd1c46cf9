"""The catalogue pages, for people: the dataset catalogue, my projects, the application form, the
data stewards' queue and the public register of approved projects.

A JupyterHub managed service (``python -m hub.catalogue_service``) served at ``/services/catalogue/``;
see ``hub/catalogue_service/app.py``.
"""
