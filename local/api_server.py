"""The Chalice app served over HTTP, as ``chalice local --no-autoreload`` does.

    python -m local.api_server --port 8001 [--stage dev]

``chalice local`` itself overwrites the environment with the stage's values
from ``.chalice/config.json``, so the local stack could not point the app at
moto, at the face endpoint or at the site's real origin. This builds the
same server with Chalice's own pieces (config, route validation, local
gateway) but leaves the environment as the launcher set it; stage values
fill in only what is unset.
"""
import argparse
import signal
import sys
import threading

from chalicelib.stage_config import PROJECT_DIR, apply_stage_environment


def make_server(host, port, stage="dev"):
    """A chalice.local.LocalDevServer for the project's app (not started)."""
    from chalice.cli.factory import CLIFactory
    from chalice.deploy.validate import validate_routes
    from chalice.local import create_local_server

    apply_stage_environment(stage)
    # A throwaway environ: Chalice writes the stage's variables into it, not os.environ.
    factory = CLIFactory(project_dir=str(PROJECT_DIR), environ={})
    config = factory.create_config_obj(chalice_stage_name=stage)
    validate_routes(config.chalice_app.routes)
    return create_local_server(config.chalice_app, config, host, port)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m local.api_server",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stage", default="dev")
    args = parser.parse_args(argv)
    try:
        server = make_server(args.host, args.port, args.stage)
    except OSError as error:
        print(f"error: cannot listen on {args.host}:{args.port}: {error.strerror}",
              file=sys.stderr, flush=True)
        return 2

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening on http://{args.host}:{args.port} (stage {args.stage})", flush=True)
    server.server.serve_forever()
    server.server.server_close()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
