"""ProjectSpawner: (user, project) -> a workspace plan (pure) -> applied to a container engine."""
