"""Per-project extracts: only the granted variables and period, keyed by project pseudonyms, linked
sources, opt-outs left out (issue 15). ``jobs`` queues, ``build`` builds, ``optouts`` keeps the register."""
