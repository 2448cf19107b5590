"""The devicedb fixtures: the simulated cluster on the session sandbox, a fresh bucket."""

from tests.devicedb_fixtures import bucket, devicedb, devicedb_sim  # noqa: F401
