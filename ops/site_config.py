"""The static site's ``config.js``: the one file that tells the browser app
where its API is.

Used by the local stack (pointing at the local API) and by ``make publish``
(pointing at API Gateway). The URL is validated and JSON-encoded by the
template, so nothing in it can break out of the script.
"""
import pathlib
from urllib.parse import urlsplit

import jinja2

TEMPLATES_DIR = pathlib.Path(__file__).resolve().parent / "templates"

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
                          autoescape=False, keep_trailing_newline=True,
                          undefined=jinja2.StrictUndefined)


def normalise_api_base_url(api_base_url):
    """``api_base_url`` without a trailing slash; ValueError unless http(s) with a host."""
    if not isinstance(api_base_url, str):
        raise ValueError("the API base URL must be a string")
    parts = urlsplit(api_base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"the API base URL must be an http(s) URL with a host, "
                         f"got {api_base_url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"the API base URL must have no query or fragment, "
                         f"got {api_base_url!r}")
    return api_base_url.strip().rstrip("/")


def render_config_js(api_base_url):
    """The text of ``config.js``: sets ``window.ROLLCALL_CONFIG.apiBaseUrl``."""
    url = normalise_api_base_url(api_base_url)
    # tojson escapes <, >, & and ' too, so the value is safe inside a <script>.
    return _env.get_template("config.js.j2").render(api_base_url=url)
