"""Fixtures of the stack tier: parts of the one-machine stack as real processes."""
import pytest

from tests.support.stack import running_moto


@pytest.fixture(scope="module")
def shared_moto(tmp_path_factory):
    """One moto server for the tests that do not restart it (each uses its own names)."""
    with running_moto(tmp_path_factory.mktemp("shared") / "moto") as moto:
        yield moto
