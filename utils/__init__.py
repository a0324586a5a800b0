"""Small shared helpers: user-facing errors, registries, atomic file writes, seeding."""
