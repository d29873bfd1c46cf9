"""The TRE platform core: settings, database sessions, translations, deployment checks, labels."""
