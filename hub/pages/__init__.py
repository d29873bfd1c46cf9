"""The hub's own pages (home page) and their language."""
