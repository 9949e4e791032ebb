"""The Chalice app served over HTTP, as ``chalice local --no-autoreload`` does.

    python -m local.stack.api_server --port 8001 [--stage dev]

``chalice local`` itself overwrites the environment with the stage's values
from ``.chalice/config.json``, so the local stack could not point the app at
moto, at the face endpoint or at the site's real origin. This builds the
same server with Chalice's own pieces (config, route validation, local
gateway) but leaves the environment as the launcher set it; stage values
fill in only what is unset.
"""
import argparse
import sys

from ops.stage_config import PROJECT_DIR, apply_stage_environment
from local.serving import bind, serve_until_signalled


#: Connections waiting to be accepted (socketserver's default of 5 reset clients
#: under a burst), and AWS connections kept open per client (botocore's default
#: of 10 is for Lambda, one request at a time; here a thread serves each client).
LISTEN_BACKLOG = 1024
AWS_CONNECTIONS = 64


def make_server(host, port, stage="dev"):
    """A chalice.local.LocalDevServer for the project's app (not started):
    a thread per connection, kept-alive connections, a real listen backlog."""
    from botocore.config import Config
    from chalice.cli.factory import CLIFactory
    from chalice.deploy.validate import validate_routes
    from chalice.local import (CustomLocalChalice, LocalChalice, LocalDevServer,
                               ThreadedHTTPServer)

    from chalicelib import clients

    class Server(ThreadedHTTPServer):
        request_queue_size = LISTEN_BACKLOG
        allow_reuse_address = True

    clients._BOTO_CONFIG = clients._BOTO_CONFIG.merge(
        Config(max_pool_connections=AWS_CONNECTIONS))
    apply_stage_environment(stage)
    # A throwaway environ: Chalice writes the stage's variables into it, not os.environ.
    factory = CLIFactory(project_dir=str(PROJECT_DIR), environ={})
    config = factory.create_config_obj(chalice_stage_name=stage)
    validate_routes(config.chalice_app.routes)
    app = config.chalice_app
    # What chalice.local.create_local_server does: current_request per thread.
    CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
    app.__class__ = CustomLocalChalice
    return LocalDevServer(app, config, host, port, server_cls=Server)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m local.stack.api_server",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stage", default="dev")
    args = parser.parse_args(argv)
    server = bind(lambda: make_server(args.host, args.port, args.stage), args.host, args.port)
    if server is None:
        return 2
    serve_until_signalled(server.server, f"listening on http://{args.host}:{args.port} "
                                         f"(stage {args.stage})")
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
