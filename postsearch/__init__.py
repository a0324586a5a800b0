"""Post-search: reading a finished search, choosing architectures from its front and writing them out."""
