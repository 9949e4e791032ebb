"""Building the browser app and publishing it to the stage's site bucket.

:func:`build_site` turns ``static_site/`` into a folder any static host can
serve (an S3 bucket behind CloudFront, the one-machine stack, ``python -m
http.server``): the HTML and JS modules copied as they are, the SCSS compiled
to CSS with libsass, and ``config.js`` rendered with the API's base URL (the
only thing that differs between stages, so the rest is built once).

``python -m ops.publish --stage prod`` (``make publish STAGE=prod``)
reads the deployed API's URL, builds into a temporary folder, moves the
scripts and styles under ``assets/<content hash>/`` (:func:`fingerprint_site`,
so CloudFront and browsers may keep them for a year) and uploads every file
that differs from the bucket's copy to ``SITE_BUCKET`` with its Content-Type,
then removes files a previous publish left that this build no longer has.
"""
import argparse
import hashlib
import json
import mimetypes
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

from ops.stage_config import PROJECT_DIR, StageError, apply_stage_environment, aws_session

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
# cached for long, or a new publish is not seen; fingerprinted assets (their
# name changes with their content) are kept for a year; the rest, briefly.
NO_CACHE = {"index.html", "config.js"}
ASSETS_PREFIX = "assets/"
FINGERPRINTED_DIRS = ("js", "css")
CACHE_CONTROL_ASSETS = "public, max-age=31536000, immutable"


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


def fingerprint_site(site_dir):
    """Move ``js/`` and ``css/`` under ``assets/<hash>/`` and point index.html there.

    The hash covers every file moved, so any change gives new names and a
    cached copy is never stale. The modules import each other by relative
    paths, which keep working as they move together. Answers the prefix.
    """
    site_dir = pathlib.Path(site_dir)
    digest = hashlib.sha256()
    for name in FINGERPRINTED_DIRS:
        for key, path in site_files(site_dir / name):
            digest.update(f"{name}/{key}".encode() + b"\0" + path.read_bytes() + b"\0")
    prefix = f"{ASSETS_PREFIX}{digest.hexdigest()[:16]}/"
    (site_dir / prefix).mkdir(parents=True)
    for name in FINGERPRINTED_DIRS:
        if (site_dir / name).is_dir():
            (site_dir / name).rename(site_dir / prefix / name)
    index = site_dir / "index.html"
    pattern = re.compile(r'((?:src|href)=")((?:%s)/)' % "|".join(FINGERPRINTED_DIRS))
    index.write_text(pattern.sub(lambda m: m.group(1) + prefix + m.group(2),
                                 index.read_text(encoding="utf-8")), encoding="utf-8")
    return prefix


def cache_control(key):
    if key in NO_CACHE:
        return "no-cache"
    if key.startswith(ASSETS_PREFIX):
        return CACHE_CONTROL_ASSETS
    return "public, max-age=300"


def site_files(site_dir):
    """``(key, path)`` for every file of a built site, keys with ``/``."""
    site_dir = pathlib.Path(site_dir)
    return sorted((path.relative_to(site_dir).as_posix(), path)
                  for path in site_dir.rglob("*") if path.is_file())


def upload_site(site_dir, s3_client, bucket, out=None):
    """Make ``bucket`` hold exactly ``site_dir``; answer ``(uploaded, removed)`` keys.

    A file whose bytes the bucket already has (its ETag is the MD5 of a
    single-part upload) is not sent again, so publishing the same build twice
    changes nothing.
    """
    present = {}
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        present.update((obj["Key"], obj["ETag"].strip('"')) for obj in page.get("Contents", []))
    uploaded, keep = [], set()
    for key, path in site_files(site_dir):
        keep.add(key)
        data = path.read_bytes()
        if present.get(key) == hashlib.md5(data).hexdigest():
            continue
        s3_client.put_object(Bucket=bucket, Key=key, Body=data,
                             ContentType=content_type(key), CacheControl=cache_control(key))
        uploaded.append(key)
        if out:
            print(f"uploaded  {key}  ({content_type(key)})", file=out)
    stale = sorted(key for key in present if key not in keep)
    for start in range(0, len(stale), 1000):
        s3_client.delete_objects(Bucket=bucket, Delete={
            "Objects": [{"Key": key} for key in stale[start:start + 1000]], "Quiet": True})
    if out:
        for key in stale:
            print(f"removed   {key}", file=out)
    return uploaded, stale


def deployed_api_url(stage, project_dir=PROJECT_DIR, run=subprocess.run, deployed_dir=None):
    """The deployed REST API's URL for ``stage``.

    Reads ``.chalice/deployed/<stage>.json`` (written by ``chalice deploy``);
    falls back to asking ``chalice url``.
    """
    deployed_dir = deployed_dir or pathlib.Path(project_dir) / ".chalice" / "deployed"
    record = pathlib.Path(deployed_dir) / f"{stage}.json"
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


def publish(stage, clients=None, api_url=None, out=sys.stdout, deployed_dir=None):
    """Build the site for ``stage``'s API and upload what changed to its site bucket."""
    from chalicelib.clients import ClientFactory
    from chalicelib.settings import load_settings

    apply_stage_environment(stage)
    settings = load_settings()
    if not settings.site_bucket:
        raise PublishError(f"stage {stage!r} has no SITE_BUCKET in .chalice/config.json")
    api_url = api_url or deployed_api_url(stage, deployed_dir=deployed_dir)
    if clients is None:
        clients = ClientFactory(region=aws_session().region_name)
    with tempfile.TemporaryDirectory(prefix="rollcall-site-") as tmp:
        site = build_site(pathlib.Path(tmp) / "site", api_url)
        fingerprint_site(site)
        uploaded, removed = upload_site(site, clients.client("s3"), settings.site_bucket, out)
    if out and not uploaded and not removed:
        print(f"site unchanged: s3://{settings.site_bucket} already holds this build "
              f"for API {api_url}", file=out)
    elif out:
        print(f"published {len(uploaded)} file(s) to s3://{settings.site_bucket} for API "
              f"{api_url}" + (f"; removed {len(removed)} old file(s)" if removed else ""),
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
    except (PublishError, StageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
