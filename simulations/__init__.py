"""attune simulations."""
