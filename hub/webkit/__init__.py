"""One small web kit for the TRE's own web services (catalogue pages, egress review).

- ``pages``: ``security_headers`` (no script, nothing framed but what a service allows), ``KitSite``
  (templates: the service's own folder, then the kit's; the translation and number helpers every
  page uses) and ``KitPage`` (a hub-authenticated Tornado handler in the browser's language, with
  the headers, the XSRF refusal in words, POST-redirect-GET and error pages);
- ``forms``: ``Problem`` / ``Problems``, what is wrong with a form, as English msgids with parameters;
- ``templates/webkit/base.html`` and ``error.html``: the hub's look, which a service's own
  ``base.html`` and ``error.html`` extend (its navigation, its title, its way back).
"""
