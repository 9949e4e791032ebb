"""The built browser app, served on 127.0.0.1.

    python -m local.stack.site_server --port 8000 --api-url http://127.0.0.1:8001 \
        --out .rollcall/site

It builds the site with :func:`ops.publish.build_site` (what ``make
publish`` uploads, with a ``config.js`` pointing at the local API) and serves
that folder: the same Content-Types and caching rules as the published site,
no directory listings, and headers that forbid framing and sniffing. (The
page's own Content-Security-Policy is in its ``<meta>``; only what a meta tag
cannot say, ``frame-ancestors``, is added here.)
"""
import argparse
import functools
import http.server
import sys

from ops.publish import NO_CACHE, build_site, content_type
from local.serving import bind, serve_until_signalled


class SiteHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with explicit types and security headers."""

    def guess_type(self, path):
        return content_type(path)

    def list_directory(self, path):
        self.send_error(404, "Not found")
        return None

    def end_headers(self):
        name = self.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "index.html"
        self.send_header("Cache-Control", "no-store" if name in NO_CACHE else "max-age=60")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy", "frame-ancestors 'none'")
        super().end_headers()

    def log_message(self, format, *args):
        sys.stdout.write("%s %s\n" % (self.address_string(), format % args))
        sys.stdout.flush()


def make_server(host, port, site_dir):
    return http.server.ThreadingHTTPServer(
        (host, port), functools.partial(SiteHandler, directory=str(site_dir)))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m local.stack.site_server",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--out", required=True, help="folder to build the site into")
    args = parser.parse_args(argv)
    try:
        site_dir = build_site(args.out, args.api_url)
    except Exception as error:  # a bad SCSS file, a missing index.html...
        print(f"error: the site could not be built: {error}", file=sys.stderr, flush=True)
        return 2
    server = bind(lambda: make_server(args.host, args.port, site_dir), args.host, args.port)
    if server is None:
        return 2
    serve_until_signalled(server, f"built {site_dir}; listening on http://{args.host}:{args.port}")
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
