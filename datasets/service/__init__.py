"""The catalogue pages, for people: the dataset catalogue, my projects, the application form, the
data stewards' queue and the public register of approved projects.

A JupyterHub managed service (``python -m datasets.service``) served at ``/services/catalogue/``;
see ``datasets/service/app.py``.
"""
