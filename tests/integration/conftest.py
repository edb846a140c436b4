"""The `heteroflow up` fixture for every real-process test of the one-machine default."""

from tests.integration.test_local_e2e import up  # noqa: F401 - a fixture, used by name
from tests.integration.test_nomad_placement import env_factory  # noqa: F401
