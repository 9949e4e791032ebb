"""``python -m local.stack``: flags and environment, the stack until Ctrl-C, and
``cli ...`` against a running stack (what ``make run`` and the README's commands use).
"""

import argparse
import dataclasses
import json
import os
import pathlib
import signal
import sys
import threading
import time


from local.stack.launcher import (DEFAULT_ADMIN_EMAIL, DEFAULT_DATA_DIR, REGION, Ports, Stack,
                                  _port)
from local.stack.processes import StackError


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m local.stack",
        description="Run Rollcall on this machine (127.0.0.1): moto, the face endpoint, "
                    "the event bridge, the API and the site.")
    parser.add_argument("--data-dir", default=os.environ.get("ROLLCALL_DATA_DIR"),
                        help="where data and logs live (env ROLLCALL_DATA_DIR; "
                             "default .rollcall/ in the project)")
    for field in dataclasses.fields(Ports):
        parser.add_argument(f"--{field.name}-port", type=int, default=None,
                            help=f"env ROLLCALL_{field.name.upper()}_PORT; "
                                 f"default {field.default}")
    parser.add_argument("--stage", default="dev",
                        help="stage in .chalice/config.json whose resource names are used")
    parser.add_argument("--admin-email", default=os.environ.get(
        "ROLLCALL_ADMIN_EMAIL", DEFAULT_ADMIN_EMAIL),
        help="email of the admin made on the first start")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="`cli ARGS...`: run ops.cli against the running stack")
    return parser


def _run_cli(data_dir, argv):
    """``ops.cli`` with the endpoints of the stack running on ``data_dir``."""
    state_path = data_dir / "stack.json"
    if not state_path.is_file():
        print(f"error: no Rollcall stack is running on {data_dir}; start it (make run) "
              "and run this in another terminal", file=sys.stderr)
        return 1
    state = json.loads(state_path.read_text())
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[key]
    os.environ.update(AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local",
                      AWS_DEFAULT_REGION=REGION, AWS_ENDPOINT_URL=state["moto_url"],
                      AWS_ENDPOINT_URL_REKOGNITION=state["faces_url"],
                      AWS_ENDPOINT_URL_MEDIACONVERT=state.get("convert_url", ""),
                      AWS_CONFIG_FILE=str(data_dir / "aws-config-none"),
                      AWS_SHARED_CREDENTIALS_FILE=str(data_dir / "aws-credentials-none"))
    from ops import cli
    return cli.run(["--stage", state["stage"], *argv])


def main(argv=None):
    args = _parser().parse_args(argv)
    data_dir = pathlib.Path(args.data_dir or DEFAULT_DATA_DIR).resolve()
    if args.command:
        if args.command[0] != "cli":
            print(f"error: unknown command {args.command[0]!r}; the only one is `cli`",
                  file=sys.stderr)
            return 2
        return _run_cli(data_dir, args.command[1:])
    try:
        ports = Ports.from_env()
        for field in dataclasses.fields(Ports):
            value = getattr(args, f"{field.name}_port")
            if value is not None:
                setattr(ports, field.name, _port(value, f"--{field.name}-port"))
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    # The launcher itself talks to moto (the first admin): never with the
    # user's AWS profile, credentials or endpoints.
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[key]
    os.environ.update(AWS_CONFIG_FILE=str(data_dir / "aws-config-none"),
                      AWS_SHARED_CREDENTIALS_FILE=str(data_dir / "aws-credentials-none"))
    stopping = threading.Event()

    def on_signal(signum, frame):
        if stopping.is_set():
            return
        stopping.set()
        # During start() this interrupts the wait; start() then stops what it began.
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stack = Stack(data_dir, ports=ports, stage=args.stage, admin_email=args.admin_email)
    try:
        stack.start()
        while True:
            if stack.gave_up is not None:
                # A part kept stopping; the supervisor said why.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                stack.stop()
                return 1
            time.sleep(0.5)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.say("stopping every part...")
        stack.stop()
        return 0

