"""The catalogue: datasets, projects, memberships and dated grants, the single source of truth
for who may see what. `spawner` and (later) `egress_review` read it; it imports neither."""
