"""Building the browser app and publishing it to the stage's site bucket.

:func:`build_site` turns ``static_site/`` into a folder any static host can
serve (an S3 bucket behind CloudFront, the one-machine stack, ``python -m
http.server``): the HTML and JS modules copied as they are, the SCSS compiled
to CSS with libsass, and ``config.js`` rendered with the API's base URL (the
only thing that differs between stages, so the rest is built once).

``python -m ops.publish --stage prod`` (``make publish STAGE=prod``)
reads the deployed API's URL, builds into a temporary folder and uploads every
file to ``SITE_BUCKET`` with its Content-Type, then removes files a previous
publish left that this build no longer has.
"""
import argparse
import json
import mimetypes
import pathlib
import shutil
import subprocess
import sys
import tempfile

from ops.stage_config import PROJECT_DIR, apply_stage_environment

SOURCE_DIR = PROJECT_DIR / "static_site"
SCSS_ENTRY = "main.scss"
CSS_NAME = "app.css"

# Content types by extension; Python's mimetypes varies by platform (.js in
# particular), and a module served with the wrong type does not run.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8",
    ".woff2": "font/woff2",
}
# Files that name other files or carry the stage's API URL must never be
# cached for long, or a new publish is not seen; the rest may be, briefly.
NO_CACHE = {"index.html", "config.js"}


class PublishError(RuntimeError):
    """The site could not be built or published; the message says why."""


def content_type(path):
    suffix = pathlib.PurePath(path).suffix.lower()
    if suffix in CONTENT_TYPES:
        return CONTENT_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(str(path))
    return guessed or "application/octet-stream"


def compile_scss(scss_dir, css_path):
    """Compile ``scss_dir/main.scss`` (and its partials) into ``css_path``."""
    import sass  # libsass; imported here so the Lambda bundle never needs it

    entry = pathlib.Path(scss_dir) / SCSS_ENTRY
    try:
        css = sass.compile(filename=str(entry), output_style="compressed",
                           include_paths=[str(scss_dir)])
    except sass.CompileError as error:
        raise PublishError(f"SCSS does not compile: {error}") from error
    css_path = pathlib.Path(css_path)
    css_path.parent.mkdir(parents=True, exist_ok=True)
    css_path.write_text(css, encoding="utf-8")
    return css_path


def build_site(out_dir, api_base_url, source_dir=SOURCE_DIR):
    """Build the site into ``out_dir`` (emptied first) and answer its path.

    ``out_dir`` gets ``index.html``, ``js/``, ``css/app.css`` compiled from
    ``scss/`` and ``config.js`` pointing the app at ``api_base_url``. The
    SCSS sources are not copied: the browser never needs them.
    """
    from ops.site_config import render_config_js

    source_dir = pathlib.Path(source_dir)
    out_dir = pathlib.Path(out_dir)
    if not (source_dir / "index.html").is_file():
        raise PublishError(f"no site to build: {source_dir / 'index.html'} is missing")
    # Build beside the target and swap it in, so a failed build (bad SCSS)
    # never leaves a half-built site where a server is serving the old one.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=".site-", dir=out_dir.parent))
    try:
        shutil.copytree(source_dir, staging, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("scss", "css", "config.js", ".*",
                                                      "*~", "__pycache__"))
        compile_scss(source_dir / "scss", staging / "css" / CSS_NAME)
        (staging / "config.js").write_text(render_config_js(api_base_url), encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def site_files(site_dir):
    """``(key, path)`` for every file of a built site, keys with ``/``."""
    site_dir = pathlib.Path(site_dir)
    return sorted((path.relative_to(site_dir).as_posix(), path)
                  for path in site_dir.rglob("*") if path.is_file())


def upload_site(site_dir, s3_client, bucket, out=None):
    """Put every file of ``site_dir`` into ``bucket``; drop keys it no longer has.

    Answers ``(uploaded, removed)`` key lists.
    """
    uploaded = []
    for key, path in site_files(site_dir):
        cache = "no-cache" if key in NO_CACHE else "public, max-age=300"
        with open(path, "rb") as body:
            s3_client.put_object(Bucket=bucket, Key=key, Body=body,
                                 ContentType=content_type(key), CacheControl=cache)
        uploaded.append(key)
        if out:
            print(f"uploaded  {key}  ({content_type(key)})", file=out)
    keep = set(uploaded)
    stale = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        stale.extend(obj["Key"] for obj in page.get("Contents", []) if obj["Key"] not in keep)
    for start in range(0, len(stale), 1000):
        s3_client.delete_objects(Bucket=bucket, Delete={
            "Objects": [{"Key": key} for key in stale[start:start + 1000]], "Quiet": True})
    if out:
        for key in stale:
            print(f"removed   {key}", file=out)
    return uploaded, stale


def deployed_api_url(stage, project_dir=PROJECT_DIR, run=subprocess.run):
    """The deployed REST API's URL for ``stage``.

    Reads ``.chalice/deployed/<stage>.json`` (written by ``chalice deploy``);
    falls back to asking ``chalice url``.
    """
    record = pathlib.Path(project_dir) / ".chalice" / "deployed" / f"{stage}.json"
    if record.is_file():
        with open(record, encoding="utf-8") as handle:
            deployed = json.load(handle)
        for resource in deployed.get("resources", []):
            if resource.get("rest_api_url"):
                return resource["rest_api_url"]
    chalice = pathlib.Path(sys.executable).with_name("chalice")
    result = run([str(chalice) if chalice.exists() else "chalice", "url", "--stage", stage],
                 cwd=str(project_dir), capture_output=True, text=True)
    url = (result.stdout or "").strip()
    if result.returncode != 0 or not url.startswith("http"):
        raise PublishError(f"the {stage} API is not deployed (no URL from "
                           f".chalice/deployed/{stage}.json or 'chalice url'): "
                           f"run 'make deploy STAGE={stage}' first")
    return url


def publish(stage, clients=None, api_url=None, out=sys.stdout):
    """Build the site for ``stage``'s API and upload it to its site bucket."""
    from chalicelib.clients import ClientFactory
    from chalicelib.settings import load_settings

    apply_stage_environment(stage)
    settings = load_settings()
    if not settings.site_bucket:
        raise PublishError(f"stage {stage!r} has no SITE_BUCKET in .chalice/config.json")
    api_url = api_url or deployed_api_url(stage)
    clients = clients or ClientFactory(region=settings.region)
    with tempfile.TemporaryDirectory(prefix="rollcall-site-") as tmp:
        site = build_site(pathlib.Path(tmp) / "site", api_url)
        uploaded, removed = upload_site(site, clients.client("s3"), settings.site_bucket, out)
    print(f"published {len(uploaded)} file(s) to s3://{settings.site_bucket} "
          f"for API {api_url}" + (f"; removed {len(removed)} old file(s)" if removed else ""),
          file=out)
    return uploaded, removed


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m ops.publish",
        description="Build the web app; with --stage, upload it to the stage's site bucket.")
    parser.add_argument("--stage", help="publish to this stage's SITE_BUCKET")
    parser.add_argument("--api-url", help="the API's base URL (default for --stage: the "
                        "deployed one; for --out: http://127.0.0.1:8001)")
    parser.add_argument("--out", help="only build, into this folder")
    args = parser.parse_args(argv)
    try:
        if args.out:
            site = build_site(args.out, args.api_url or "http://127.0.0.1:8001")
            print(f"built the site in {site}")
        elif args.stage:
            publish(args.stage, api_url=args.api_url)
        else:
            parser.error("give --stage STAGE to publish, or --out DIR to build only")
    except PublishError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
