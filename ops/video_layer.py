"""The evidence function's video libraries (PyAV, Pillow) as a Lambda layer.

    python -m ops.video_layer build                      -> build/video-layer.zip
    python -m ops.video_layer terraform build/terraform-prod   (make package runs it)
    python -m ops.video_layer publish --stage prod             (make deploy runs it)

Why a layer: the crop cutting (``cut_evidence``, chalicelib/evidence.py)
decodes video; no other function does. In the one deployment package that
chalice builds for every function, PyAV and Pillow would make it 66 MB zipped
(over Lambda's 50 MB direct upload) and load 135 MB into the API's cold
starts. As a layer attached to ``cut_evidence`` only, the package stays as it
was and the function with its layer stays far under Lambda's 250 MB unzipped.

Why these versions: Lambda's Python 3.11 runs on Amazon Linux 2 (glibc
2.26), so it needs manylinux2014 wheels; the newest PyAV with those is
14.2.0 (later ones are manylinux_2_28 only, which is why requirements.txt
cannot list the ``av`` the local engine uses). The code uses only what both
have (``av.open`` on a file object, seek, decode, ``to_image``, ``rotation``).

``terraform`` adds the layer to chalice's Terraform output (an
``aws_lambda_layer_version`` from the zip beside ``deployment.zip``, attached
to ``cut_evidence``); ``publish`` publishes it with the stage's credentials and
writes its ARN into ``.chalice/config.json`` (``cut_evidence.layers``) for
``chalice deploy``.
"""
import argparse
import hashlib
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

from ops.stage_config import PROJECT_DIR

#: Pinned for the Lambda platform (see the module docstring for why not requirements.txt).
LAMBDA_WHEELS = ("av==14.2.0", "pillow==12.2.0")
PLATFORM = "manylinux2014_x86_64"
FUNCTION = "cut_evidence"
LAYER_ZIP = PROJECT_DIR / "build" / "video-layer.zip"
#: Lambda's limits: a zip uploaded directly, and a function with its layers unzipped.
MAX_UPLOAD_BYTES = 50 * 1024 ** 2
MAX_UNZIPPED_BYTES = 250 * 1024 ** 2


def python_version():
    """The Lambda runtime's version: chalice packages for the interpreter it runs on."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _download(cache):
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary=:all:", "--platform", PLATFORM, "--implementation", "cp",
                    "--python-version", python_version(), "--dest", str(cache),
                    *LAMBDA_WHEELS], check=True)
    wanted = {spec.split("==")[0].lower(): spec.split("==")[1] for spec in LAMBDA_WHEELS}
    wheels = [path for path in sorted(cache.glob("*.whl"))
              if wanted.get(path.name.split("-")[0].lower()) == path.name.split("-")[1]]
    if len(wheels) != len(LAMBDA_WHEELS):
        raise SystemExit(f"expected Lambda wheels for {LAMBDA_WHEELS}, found {wheels}")
    return wheels


def build(out=LAYER_ZIP, cache=PROJECT_DIR / "build" / "wheels"):
    """Write the layer zip (wheels unpacked under ``python/``); (zipped, unzipped) bytes."""
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    unzipped = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp) / "python"
        for wheel in _download(pathlib.Path(cache)):
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(root)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as layer:
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                info = zipfile.ZipInfo(str(path.relative_to(tmp)), date_time=(2020, 1, 1, 0, 0, 0))
                info.external_attr = (path.stat().st_mode & 0o777) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                layer.writestr(info, path.read_bytes())
                unzipped += path.stat().st_size
    return out.stat().st_size, unzipped


def unzipped_size(zip_path):
    with zipfile.ZipFile(zip_path) as archive:
        return sum(info.file_size for info in archive.infolist())


def add_to_terraform(tf_dir, layer_zip=LAYER_ZIP):
    """Put the layer in chalice's Terraform output and attach it to the evidence function."""
    tf_dir = pathlib.Path(tf_dir)
    shutil.copyfile(layer_zip, tf_dir / "video-layer.zip")
    path = tf_dir / "chalice.tf.json"
    terraform = json.loads(path.read_text())
    resources = terraform["resource"]
    app_name = resources["aws_lambda_function"][FUNCTION]["function_name"].rsplit("-", 1)[0]
    resources.setdefault("aws_lambda_layer_version", {})["video"] = {
        "layer_name": f"{app_name}-video",
        "filename": "${path.module}/video-layer.zip",
        "source_code_hash": '${filebase64sha256("${path.module}/video-layer.zip")}',
        "compatible_runtimes": [f"python{python_version()}"],
        "compatible_architectures": ["x86_64"],
        "description": ", ".join(LAMBDA_WHEELS),
    }
    resources["aws_lambda_function"][FUNCTION]["layers"] = [
        "${aws_lambda_layer_version.video.arn}"]
    path.write_text(json.dumps(terraform, indent=2))


def publish(stage, layer_zip=LAYER_ZIP, clients=None):
    """Publish the layer for ``stage`` (unless this very zip already is) and record its ARN."""
    from chalicelib.clients import ClientFactory
    from ops.stage_config import load_config
    data = pathlib.Path(layer_zip).read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    name = f"rollcall-{stage}-video"
    lam = (clients or ClientFactory()).client("lambda")
    arn = None
    for version in lam.list_layer_versions(LayerName=name).get("LayerVersions", []):
        if version.get("Description", "").endswith(digest):
            arn = version["LayerVersionArn"]
            break
    if arn is None:
        arn = lam.publish_layer_version(
            LayerName=name, Content={"ZipFile": data},
            Description=f"{', '.join(LAMBDA_WHEELS)} {digest}",
            CompatibleRuntimes=[f"python{python_version()}"],
            CompatibleArchitectures=["x86_64"])["LayerVersionArn"]
    config_path = PROJECT_DIR / ".chalice" / "config.json"
    config = load_config()
    function = config["stages"][stage]["lambda_functions"].setdefault(FUNCTION, {})
    if function.get("layers") != [arn]:
        function["layers"] = [arn]
        config_path.write_text(json.dumps(config, indent=2) + "\n")
    return arn


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ops.video_layer",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="write build/video-layer.zip")
    tf = sub.add_parser("terraform", help="add the layer to a `chalice package` output")
    tf.add_argument("out", type=pathlib.Path)
    pub = sub.add_parser("publish", help="publish the layer and record its ARN")
    pub.add_argument("--stage", default="dev")
    args = parser.parse_args(argv)
    zipped, unzipped = build()
    print(f"video layer: {', '.join(LAMBDA_WHEELS)} ({PLATFORM}, Python {python_version()}): "
          f"{zipped / 1e6:.1f} MB zipped, {unzipped / 1e6:.1f} MB unzipped")
    if args.command == "terraform":
        add_to_terraform(args.out)
        package = unzipped_size(args.out / "deployment.zip")
        print(f"{FUNCTION}: package {package / 1e6:.1f} MB + layer {unzipped / 1e6:.1f} MB "
              f"= {(package + unzipped) / 1e6:.1f} MB unzipped (Lambda allows 262.1)")
    elif args.command == "publish":
        from ops.stage_config import apply_stage_environment
        apply_stage_environment(args.stage)
        print(f"{FUNCTION} layer: {publish(args.stage)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
