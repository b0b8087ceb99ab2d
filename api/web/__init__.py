"""The profile page attune serves to end users behind a signed link (``api.routes.page``)."""
