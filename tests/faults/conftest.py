"""The fault suite uses the API tests' factory fixtures (real app, store, learner)."""

from __future__ import annotations

from tests.api.conftest import client, make_client  # noqa: F401  (fixtures, used by name)
