"""attune streaming."""
