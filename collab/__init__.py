"""attune collab."""
