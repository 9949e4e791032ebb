"""One command per operation on a stage: deploy, package, destroy.

``python -m ops.deploy deploy --stage prod`` (``make deploy STAGE=prod``):
provisions the stage (:mod:`ops.provision`: tables, buckets, the site's
CloudFront distribution, ...), renders the Chalice project with every name
and the site's origin resolved (:mod:`ops.chalice_project`), runs
``chalice deploy`` on it unless it is exactly what was last deployed,
publishes the site (:mod:`ops.publish`) and ends with the site's URL, the
API's URL and how to create the first admin. A second run changes nothing
and says so.

``package`` renders the project without an account (bucket names are left
to Terraform to complete) and runs ``chalice package --pkg-format terraform``.
``destroy`` deletes the API, then every resource of the stage, and says what
could not be deleted yet.
"""
import argparse
import json
import os
import pathlib
import re
import subprocess
import sys

from ops import chalice_project
from ops.stage_config import (PROJECT_DIR, StageError, aws_session, check_site_origin,
                              current_account, stage_environment)

CHALICE = pathlib.Path(sys.executable).with_name("chalice")
DEPLOYED_DIR = PROJECT_DIR / ".chalice" / "deployed"


class DeployError(RuntimeError):
    """A step failed; the message says which and what to do."""


def _chalice(project, *args, run=subprocess.run, env=None):
    command = [str(CHALICE) if CHALICE.exists() else "chalice", "--project-dir",
               str(project), *args]
    result = run(command, env=env)
    if result.returncode != 0:
        raise DeployError(f"'{' '.join(command[1:])}' failed (exit code {result.returncode})")
    return result


def _resolved_environment(stage, account, site_origin):
    """The stage's variables as provisioning used them (the operator's override wins)."""
    env = stage_environment(stage, account=account)
    for key in env:
        if os.environ.get(key):
            env[key] = os.environ[key]
    env["SITE_ORIGIN"] = site_origin
    return env


def first_admin_command(stage):
    return (f".venv/bin/python -m ops.cli --stage {stage} user add "
            f"you@your-school.org --role admin")


def deploy(stage, session=None, out=sys.stdout, run=subprocess.run, deployed_dir=None,
           build_dir=None, publish_site=True):
    """Provision, deploy and publish ``stage``; answer a summary dict.

    ``run`` runs ``chalice`` (tests pass a stand-in); ``deployed_dir`` holds
    Chalice's deployment records and the digest of the last deployed project.
    """
    from ops import publish as publishing
    from ops.provision import for_stage

    session = aws_session(session)
    region = session.region_name
    account = current_account(session)
    deployed_dir = pathlib.Path(deployed_dir or DEPLOYED_DIR)
    print(f"== provisioning stage {stage} in account {account}, region {region}", file=out)
    provisioner = for_stage(stage, session=session, out=out, account=account)
    provisioner.run()
    site_origin = check_site_origin(provisioner.site_origin)
    env = _resolved_environment(stage, account, site_origin)

    print("== the API (chalice deploy)", file=out)
    project = chalice_project.render_project(stage, env, out_dir=build_dir,
                                             deployed_dir=deployed_dir)
    digest = chalice_project.project_digest(project)
    marker = deployed_dir / f"{stage}.source-sha256"
    record = deployed_dir / f"{stage}.json"
    api_changed = not (record.is_file() and marker.is_file()
                       and marker.read_text().strip() == digest)
    if api_changed:
        child_env = dict(os.environ, AWS_REGION=region, AWS_DEFAULT_REGION=region)
        _chalice(project, "deploy", "--stage", stage, run=run, env=child_env)
        marker.write_text(digest + "\n")
    else:
        print("unchanged  API: the same code, configuration and policy as last deployed",
              file=out)
    api_url = publishing.deployed_api_url(stage, deployed_dir=deployed_dir)

    uploaded = removed = []
    if publish_site:
        print("== the site (publish)", file=out)
        uploaded, removed = publishing.publish(stage, clients=provisioner.clients,
                                               api_url=api_url, out=out,
                                               deployed_dir=deployed_dir)
    changed = bool(provisioner.changed or api_changed or uploaded or removed)
    summary = {"site_url": provisioner.site_url, "site_origin": site_origin,
               "api_url": api_url, "changed": changed,
               "distribution": provisioner.distribution}
    print("", file=out)
    print("Deployed: " + ("changes were made (listed above)." if changed else
                          "nothing changed; everything was already in place."), file=out)
    print(f"  site:  {provisioner.site_url or site_origin}", file=out)
    print(f"  API:   {api_url}", file=out)
    if provisioner.site_domain and provisioner.distribution:
        print(f"  DNS:   point {provisioner.site_domain} (CNAME or alias) at "
              f"{provisioner.distribution['DomainName']}", file=out)
    if provisioner.distribution and provisioner.distribution.get("Status") != "Deployed":
        print("  note:  the distribution is still deploying (CloudFront takes some minutes); "
              "the site answers once it is done", file=out)
    print(f"  first admin:  {first_admin_command(stage)}", file=out)
    print(f"  check it:     make smoke STAGE={stage}", file=out)
    return summary


def package(stage, out_dir, build_dir=None, run=subprocess.run, out=sys.stdout):
    """``chalice package`` for Terraform, with no account: names wait for Terraform.

    Bucket names the stage leaves out carry Terraform's account reference
    (:data:`ops.chalice_project.TERRAFORM_ACCOUNT`), in the Lambdas'
    environment and in the IAM policy alike.
    """
    env = stage_environment(stage, account=chalice_project.TERRAFORM_ACCOUNT)
    if not env.get("SITE_ORIGIN"):
        print("note: SITE_ORIGIN is not set for this stage; `make deploy` takes it from the "
              "CloudFront distribution, a Terraform deployment must set it", file=out)
    project = chalice_project.render_project(stage, env, out_dir=build_dir)
    # Chalice will not start without a region, yet its Terraform output takes
    # the region from Terraform's provider (data.aws_region): any one will do.
    child_env = dict(os.environ)
    if not (child_env.get("AWS_REGION") or child_env.get("AWS_DEFAULT_REGION")):
        child_env["AWS_DEFAULT_REGION"] = "us-east-1"
    _chalice(project, "package", "--stage", stage, "--pkg-format", "terraform",
             str(pathlib.Path(out_dir).resolve()), run=run, env=child_env)
    _name_resources_plainly(pathlib.Path(out_dir) / "chalice.tf.json")
    print(f"Terraform artefact for stage {stage} in {out_dir}", file=out)


def _name_resources_plainly(path):
    """Chalice names a bucket's notification resource after the bucket; a name
    holding Terraform's account reference is no valid resource name, so the
    reference becomes the word ``account`` there (and where it is referred to)."""
    text = path.read_text(encoding="utf-8")
    document = json.loads(text)
    for kind, resources in document.get("resource", {}).items():
        for name in [n for n in resources if "${" in n]:
            plain = re.sub(r"\$\{[^}]*\}", "account", name)
            text = text.replace(f'"{name}"', f'"{plain}"').replace(
                f"{kind}.{name}.", f"{kind}.{plain}.")
    path.write_text(text, encoding="utf-8")


def destroy(stage, session=None, out=sys.stdout, run=subprocess.run, deployed_dir=None,
            build_dir=None):
    """Delete the API, then everything provisioning made; answer what is still pending."""
    from ops.provision import PENDING, for_stage

    session = aws_session(session)
    region = session.region_name
    account = current_account(session)
    deployed_dir = pathlib.Path(deployed_dir or DEPLOYED_DIR)
    if (deployed_dir / f"{stage}.json").is_file():
        print("== the API (chalice delete)", file=out)
        env = _resolved_environment(stage, account, os.environ.get("SITE_ORIGIN", ""))
        env["SITE_ORIGIN"] = env["SITE_ORIGIN"] or "https://unused.invalid"
        project = chalice_project.render_project(stage, env, out_dir=build_dir,
                                                 deployed_dir=deployed_dir)
        child_env = dict(os.environ, AWS_REGION=region, AWS_DEFAULT_REGION=region)
        _chalice(project, "delete", "--stage", stage, run=run, env=child_env)
        (deployed_dir / f"{stage}.source-sha256").unlink(missing_ok=True)
    print(f"== the resources of stage {stage}", file=out)
    report = for_stage(stage, session=session, out=out, account=account).destroy()
    pending = [(kind, name) for kind, name, outcome in report if outcome == PENDING]
    if pending:
        print("Not deleted yet: " + ", ".join(f"{kind} {name}" for kind, name in pending)
              + ". A CloudFront distribution takes some minutes to disable; run "
              f"'make destroy STAGE={stage}' again then.", file=out)
    else:
        print(f"Stage {stage} is gone.", file=out)
    return pending


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ops.deploy",
                                     description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("deploy", "package", "destroy"):
        command = commands.add_parser(name)
        command.add_argument("--stage", default="dev")
        if name == "package":
            command.add_argument("out_dir", help="where the Terraform artefact goes")
        if name == "destroy":
            command.add_argument("--yes", action="store_true",
                                 help="do not ask for confirmation")
    args = parser.parse_args(argv)
    try:
        if args.command == "deploy":
            deploy(args.stage)
        elif args.command == "package":
            package(args.stage, args.out_dir)
        else:
            if not args.yes:
                print(f"This deletes the {args.stage} API, its site, and every student, "
                      f"photo, video and record of it. Type '{args.stage}' to go on: ",
                      end="", flush=True)
                if sys.stdin.readline().strip() != args.stage:
                    print("Nothing was deleted.")
                    return 1
            return 3 if destroy(args.stage) else 0
    except (StageError, DeployError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
