"""The demo installation: synthetic SNDS-shaped data and the demo catalogue."""
