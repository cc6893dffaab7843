"""The notification fixtures (a dispatcher the test drives, organisations, partners) for metrics of deliveries."""
from tests.notify.conftest import dispatcher, orgs, partner, settings, system  # noqa: F401
