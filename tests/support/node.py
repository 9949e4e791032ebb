"""Node runs the site's own JavaScript modules in tests (``make test`` installs it)."""
import os
import shutil

import pytest


def require_node():
    """The node binary; a failure in CI (make test installs it), a skip elsewhere."""
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("node is not installed: run 'make browser'", pytrace=False)
        pytest.skip("node is not installed: run 'make browser'")
    return node
