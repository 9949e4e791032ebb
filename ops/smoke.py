"""Check a deployed stage end to end without touching its data.

``python -m ops.smoke --stage prod`` (``make smoke STAGE=prod``) finds the
site's URL (custom domain, CloudFront distribution, or ``SITE_ORIGIN``) and
the API's URL (Chalice's deployment record), then checks, reading only:

- the site answers over HTTPS with its page, and plain HTTP is redirected there;
- ``config.js`` points the site at this API;
- the API's ``/health`` answers;
- CORS allows the site's origin and refuses another;
- a wrong sign-in is refused (an address no account has, so nobody is locked).

Each check prints ``ok`` or ``FAIL`` with what it saw; the exit code is the
number of failed checks (0 = all well).
"""
import argparse
import http.client
import json
import re
import secrets
import ssl
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit, urlunsplit

#: An origin no site has: CORS must not allow it.
FOREIGN_ORIGIN = "https://not-the-rollcall-site.invalid"
_API_BASE = re.compile(r"apiBaseUrl\s*:\s*(\"(?:[^\"\\]|\\.)*\")")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def text(self):
        return self.body.decode("utf-8", "replace")


class Smoke:
    """The checks against ``site_url`` and ``api_url``; ``context``: TLS settings."""

    def __init__(self, site_url, api_url, context=None, http_site_url=None, timeout=15):
        self.site_url = site_url.rstrip("/") + "/"
        self.api_url = api_url.rstrip("/")
        parts = urlsplit(self.site_url)
        self.site_origin = f"{parts.scheme}://{parts.netloc}"
        self.http_site_url = http_site_url or urlunsplit(("http",) + tuple(parts[1:]))
        self._opener = urllib.request.build_opener(
            _NoRedirect(), urllib.request.HTTPSHandler(context=context or
                                                       ssl.create_default_context()))
        self.timeout = timeout
        self.results = []

    def _request(self, url, method="GET", headers=None, body=None):
        request = urllib.request.Request(url, method=method, headers=headers or {}, data=body)
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                return Response(answer.status, answer.headers, answer.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, error.headers, error.read())

    def check(self, name, function):
        try:
            detail = function()
            self.results.append((name, True, detail or ""))
        except (AssertionError, OSError, ValueError, http.client.HTTPException) as error:
            self.results.append((name, False, str(error) or type(error).__name__))

    # -- the checks -----------------------------------------------------------------
    def site_over_https(self):
        assert urlsplit(self.site_url).scheme == "https", f"{self.site_url} is not HTTPS"
        answer = self._request(self.site_url)
        assert answer.status == 200, f"GET {self.site_url} answered {answer.status}"
        kind = answer.headers.get("Content-Type", "")
        assert kind.startswith("text/html"), f"the page came as {kind!r}"
        assert "config.js" in answer.text(), "the page does not load config.js"
        return f"{self.site_url} answered 200 text/html"

    def http_redirects(self):
        answer = self._request(self.http_site_url)
        location = answer.headers.get("Location", "")
        assert answer.status in (301, 302, 307, 308) and location.startswith("https://"), \
            f"GET {self.http_site_url} answered {answer.status} {location!r}, not a redirect " \
            "to HTTPS"
        return f"{self.http_site_url} -> {location}"

    def config_points_at_api(self):
        answer = self._request(self.site_url + "config.js")
        assert answer.status == 200, f"config.js answered {answer.status}"
        found = _API_BASE.search(answer.text())
        assert found, "config.js names no apiBaseUrl"
        configured = json.loads(found.group(1)).rstrip("/")
        assert configured == self.api_url, f"config.js points at {configured}, " \
            f"the API is {self.api_url}: run make publish"
        return configured

    def health(self):
        answer = self._request(self.api_url + "/health")
        assert answer.status == 200, f"/health answered {answer.status}"
        return answer.text().strip()

    def _preflight(self, origin):
        return self._request(self.api_url + "/auth/login", method="OPTIONS", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})

    def cors_allows_site(self):
        answer = self._preflight(self.site_origin)
        allowed = answer.headers.get("Access-Control-Allow-Origin")
        assert answer.status in (200, 204) and allowed == self.site_origin, \
            f"preflight from {self.site_origin} answered {answer.status}, " \
            f"Access-Control-Allow-Origin {allowed!r}: redeploy (make deploy)"
        return f"allows {allowed}"

    def cors_refuses_other(self):
        answer = self._preflight(FOREIGN_ORIGIN)
        allowed = answer.headers.get("Access-Control-Allow-Origin")
        assert allowed not in ("*", FOREIGN_ORIGIN), \
            f"CORS allows {FOREIGN_ORIGIN} (Access-Control-Allow-Origin {allowed!r})"
        return "refuses " + FOREIGN_ORIGIN

    def wrong_login_refused(self):
        body = json.dumps({"email": f"smoke-{secrets.token_hex(6)}@nobody.invalid",
                           "password": secrets.token_urlsafe(16)}).encode()
        answer = self._request(self.api_url + "/auth/login", method="POST", body=body,
                               headers={"Content-Type": "application/json",
                                        "Origin": self.site_origin})
        assert answer.status == 401, f"a wrong sign-in answered {answer.status}"
        assert b"token" not in answer.body, "a wrong sign-in answered a token"
        return "401"

    def run(self, out=sys.stdout):
        for name, function in [
                ("the site answers over HTTPS", self.site_over_https),
                ("plain HTTP is redirected to HTTPS", self.http_redirects),
                ("config.js points at the API", self.config_points_at_api),
                ("the API's /health answers", self.health),
                ("CORS allows the site's origin", self.cors_allows_site),
                ("CORS refuses another origin", self.cors_refuses_other),
                ("a wrong sign-in is refused", self.wrong_login_refused)]:
            self.check(name, function)
        for name, passed, detail in self.results:
            print(f"{'ok' if passed else 'FAIL':>4}  {name}: {detail}", file=out)
        failed = sum(1 for _, passed, _ in self.results if not passed)
        print("all checks passed" if not failed else f"{failed} check(s) failed", file=out)
        return failed


def stage_urls(stage, session=None, deployed_dir=None):
    """``(site_url, api_url)`` of a deployed stage, found without changing anything."""
    from ops.provision import for_stage
    from ops.publish import deployed_api_url

    provisioner = for_stage(stage, session=session)
    api_url = deployed_api_url(stage, deployed_dir=deployed_dir)
    if provisioner.site_domain:
        return f"https://{provisioner.site_domain}/", api_url
    if provisioner.site_origin:
        return provisioner.site_origin + "/", api_url
    found = provisioner._find_distribution()
    if found is None:
        raise RuntimeError(f"stage {stage} has no CloudFront distribution: "
                           f"run make deploy STAGE={stage}")
    return f"https://{found['DomainName']}/", api_url


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ops.smoke",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="prod")
    parser.add_argument("--site-url", help="instead of looking it up")
    parser.add_argument("--api-url", help="instead of looking it up")
    args = parser.parse_args(argv)
    site_url, api_url = args.site_url, args.api_url
    if not (site_url and api_url):
        try:
            found_site, found_api = stage_urls(args.stage)
        except Exception as error:  # noqa: BLE001 - any lookup failure ends here, said plainly
            print(f"error: {error}", file=sys.stderr)
            return 2
        site_url, api_url = site_url or found_site, api_url or found_api
    print(f"checking site {site_url} and API {api_url}")
    return min(Smoke(site_url, api_url).run(), 125)


if __name__ == "__main__":
    sys.exit(main())
