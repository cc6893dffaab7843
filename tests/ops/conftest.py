"""The notification fixtures (a dispatcher the test drives, organisations, partners) for metrics of deliveries."""
import pytest

from tests.notify.conftest import dispatcher, orgs, partner, system  # noqa: F401


@pytest.fixture
def settings(settings):  # noqa: ANN001, ANN201 - the root conftest's settings
    """No embedded dispatcher (the tests drive one), immediate retries, and a readiness time-out that a loaded test
    machine meets (the default 2 s is for a production probe)."""
    return settings.model_copy(update={"notify_dispatch_in_server": False, "notify_retry_base": 0.0,
                                       "notify_retry_max_delay": 0.0, "ready_timeout_seconds": 60.0})
