"""The site's generated config.js."""
import json
import re

import pytest

from ops.site_config import render_config_js


def _api_base(text):
    match = re.search(r"apiBaseUrl: (.*)\n", text)
    assert match, text
    return json.loads(match.group(1))


def test_points_at_the_api_without_trailing_slash():
    text = render_config_js("http://127.0.0.1:8001/")
    assert "window.ROLLCALL_CONFIG" in text
    assert _api_base(text) == "http://127.0.0.1:8001"


def test_keeps_a_stage_path():
    url = "https://abc.execute-api.eu-west-1.amazonaws.com/api"
    assert _api_base(render_config_js(url)) == url


def test_cannot_break_out_of_the_script():
    text = render_config_js("http://127.0.0.1:8001/</script><script>alert(1)")
    assert "</script>" not in text
    assert _api_base(text) == "http://127.0.0.1:8001/</script><script>alert(1)"


@pytest.mark.parametrize("bad", ["", "127.0.0.1:8001", "javascript:alert(1)",
                                 "ftp://host/", "http://", "http://h/?q=1", None])
def test_rejects_what_is_not_an_http_url(bad):
    with pytest.raises(ValueError):
        render_config_js(bad)
