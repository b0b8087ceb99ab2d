"""attune api."""
