"""Building the web app (static_site/) and publishing it to the site bucket."""
import json
import re
import subprocess

import boto3
import pytest

from ops import publish
from ops.publish import PublishError, build_site, deployed_api_url, upload_site


def test_build_site_compiles_scss_and_writes_config(tmp_path):
    out = build_site(tmp_path / "site", "http://127.0.0.1:8123/")
    assert (out / "index.html").is_file()
    assert (out / "js" / "app.js").is_file()
    css = (out / "css" / "app.css").read_text(encoding="utf-8")
    assert css and "$" not in css  # compiled, no SCSS variables left
    config = (out / "config.js").read_text(encoding="utf-8")
    assert '"http://127.0.0.1:8123"' in config and "ROLLCALL_CONFIG" in config
    assert not (out / "scss").exists()


def test_index_uses_relative_asset_paths(tmp_path):
    """An S3 website or CloudFront path prefix must work: no '/'-rooted assets."""
    html = (build_site(tmp_path / "site", "https://api.example.org") / "index.html").read_text()
    for attribute in ('src="/', 'href="/'):
        assert attribute not in html
    assert 'src="config.js"' in html and 'href="css/app.css"' in html


def test_bad_scss_fails_and_keeps_the_previous_build(tmp_path):
    source = tmp_path / "src"
    (source / "scss").mkdir(parents=True)
    (source / "index.html").write_text("<!doctype html><title>x</title>")
    (source / "scss" / "main.scss").write_text("body { color: red; }")
    out = build_site(tmp_path / "site", "http://127.0.0.1:1", source_dir=source)
    (source / "scss" / "main.scss").write_text("body { color: $undefined-variable; }")
    with pytest.raises(PublishError, match="SCSS"):
        build_site(out, "http://127.0.0.1:2", source_dir=source)
    assert "127.0.0.1:1" in (out / "config.js").read_text()  # old build untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".site-")] == []


def test_bad_api_url_is_refused(tmp_path):
    with pytest.raises(ValueError):
        build_site(tmp_path / "site", "javascript:alert(1)")


def test_upload_sets_content_types_and_removes_stale_files(aws, tmp_path):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="site")
    s3.put_object(Bucket="site", Key="js/old-module.js", Body=b"old")
    site = build_site(tmp_path / "site", "https://api.example.org")
    uploaded, removed = upload_site(site, s3, "site")
    assert removed == ["js/old-module.js"]
    assert {"index.html", "config.js", "css/app.css", "js/app.js"} <= set(uploaded)
    types = {key: s3.head_object(Bucket="site", Key=key) for key in uploaded}
    assert types["index.html"]["ContentType"] == "text/html; charset=utf-8"
    assert types["js/app.js"]["ContentType"] == "text/javascript; charset=utf-8"
    assert types["css/app.css"]["ContentType"] == "text/css; charset=utf-8"
    assert types["favicon.svg"]["ContentType"] == "image/svg+xml"
    assert types["config.js"]["CacheControl"] == "no-cache"
    listed = {obj["Key"] for obj in s3.list_objects_v2(Bucket="site")["Contents"]}
    assert listed == set(uploaded)


def test_publish_builds_for_the_stage_api_and_uploads(aws, aws_env, tmp_path):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="rollcall-dev-site")

    class Clients:
        def client(self, name):
            assert name == "s3"
            return s3

    publish.publish("dev", clients=Clients(), api_url="https://abc.execute-api.example/api/",
                    out=None)
    config = s3.get_object(Bucket="rollcall-dev-site", Key="config.js")["Body"].read()
    assert b'"https://abc.execute-api.example/api"' in config


def test_deployed_api_url_reads_the_deployment_record(tmp_path):
    deployed = tmp_path / ".chalice" / "deployed"
    deployed.mkdir(parents=True)
    (deployed / "prod.json").write_text(json.dumps({"resources": [
        {"name": "api_handler", "resource_type": "lambda_function"},
        {"name": "rest_api", "resource_type": "rest_api",
         "rest_api_url": "https://x.execute-api.eu-west-1.amazonaws.com/api/"}]}))
    assert deployed_api_url("prod", project_dir=tmp_path) == \
        "https://x.execute-api.eu-west-1.amazonaws.com/api/"


def test_deployed_api_url_says_what_to_do_when_not_deployed(tmp_path):
    def failing_run(*args, **kwargs):
        return subprocess.CompletedProcess(args, 2, stdout="", stderr="not deployed")
    with pytest.raises(PublishError, match="make deploy STAGE=prod"):
        deployed_api_url("prod", project_dir=tmp_path, run=failing_run)


JS_DIR = publish.SOURCE_DIR / "js"


def test_the_site_never_inserts_markup_from_strings():
    """User data goes in as text: no API that parses HTML is used anywhere."""
    forbidden = re.compile(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write"
                           r"|\beval\(|new Function\(")
    offenders = [f"{path.relative_to(JS_DIR)}:{number}: {line.strip()}"
                 for path in JS_DIR.rglob("*.js")
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if forbidden.search(line)]
    assert offenders == []


def test_every_module_import_resolves():
    """A typo in an import path breaks the whole app in the browser: catch it here."""
    imports = re.compile(r"""^\s*import\s[^'"]*['"](\.[^'"]+)['"]""", re.M)
    missing = []
    for path in JS_DIR.rglob("*.js"):
        for target in imports.findall(path.read_text()):
            if not (path.parent / target).resolve().is_file():
                missing.append(f"{path.relative_to(JS_DIR)} imports {target}")
    assert missing == []
    assert len(list(JS_DIR.rglob("*.js"))) > 5


def test_fingerprinting_moves_scripts_and_styles_under_a_content_hash(tmp_path):
    from ops.publish import cache_control, fingerprint_site

    site = build_site(tmp_path / "site", "https://api.example.org")
    prefix = fingerprint_site(site)
    assert re.fullmatch(r"assets/[0-9a-f]{16}/", prefix)
    assert not (site / "js").exists() and not (site / "css").exists()
    html = (site / "index.html").read_text()
    for reference in re.findall(r'(?:src|href)="([^"#:]+)"', html):
        assert (site / reference).is_file(), reference  # every page reference resolves
    assert f'src="{prefix}js/app.js"' in html and f'href="{prefix}css/app.css"' in html
    assert 'src="config.js"' in html  # never fingerprinted: it changes per stage
    imports = re.compile(r"""^\s*import\s[^'"]*['"](\.[^'"]+)['"]""", re.M)
    for path in (site / prefix / "js").rglob("*.js"):
        for target in imports.findall(path.read_text()):
            assert (path.parent / target).resolve().is_file(), f"{path} imports {target}"
    assert cache_control(f"{prefix}js/app.js") == "public, max-age=31536000, immutable"
    assert cache_control("index.html") == cache_control("config.js") == "no-cache"

    # The same sources give the same names; a changed module gives new ones.
    again = build_site(tmp_path / "again", "https://other-api.example.org")
    assert fingerprint_site(again) == prefix
    source = tmp_path / "src"
    import shutil
    shutil.copytree(publish.SOURCE_DIR, source)
    (source / "js" / "format.js").write_text(
        (source / "js" / "format.js").read_text() + "\n// changed\n")
    changed = build_site(tmp_path / "changed", "https://api.example.org", source_dir=source)
    assert fingerprint_site(changed) != prefix


def test_publishing_the_same_build_again_uploads_nothing(aws, tmp_path):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="site")
    site = build_site(tmp_path / "site", "https://api.example.org")
    uploaded, _ = upload_site(site, s3, "site")
    assert uploaded
    assert upload_site(site, s3, "site") == ([], [])
    (site / "index.html").write_text((site / "index.html").read_text() + "<!-- new -->")
    assert upload_site(site, s3, "site") == (["index.html"], [])
