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
#: under a burst), and the connections each AWS client other than DynamoDB
#: keeps open (botocore's default of 10 is for Lambda, one request at a time;
#: here a thread serves each client; DynamoDB: local.stack.fast_transport).
LISTEN_BACKLOG = 1024
AWS_CONNECTIONS = 64

#: The members of DynamoDB's AttributeValue (a tagged union: exactly one is set).
_ATTRIBUTE_VALUE_MEMBERS = frozenset(("S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"))


class _NotPlain(Exception):
    """An attribute value the direct path does not read (botocore's path then does)."""


def _parsed_value(value, blob):
    """A DynamoDB AttributeValue as botocore's JSON parser reads it."""
    if not isinstance(value, dict) or len(value) != 1:
        raise _NotPlain()
    (name, member), = value.items()
    if name not in _ATTRIBUTE_VALUE_MEMBERS or member is None:
        raise _NotPlain()
    if name == "B":
        return {name: blob(member)}
    if name == "BS":
        return {name: [None if v is None else blob(v) for v in member]}
    if name == "M":
        return {name: {k: _parsed_value(v, blob) for k, v in member.items()}}
    if name == "L":
        return {name: [None if v is None else _parsed_value(v, blob) for v in member]}
    if name in ("SS", "NS"):
        return {name: list(member)}
    return {name: member}


def fast_dynamodb_parser():
    """botocore reads every DynamoDB answer by walking the output shape: each
    attribute value of each item costs a look-up of all ten members of
    AttributeValue (a third of this process's CPU under load). Attribute values
    are read directly here, with the same result (tests/stack/test_moto_serializer.py
    compares both); anything unusual still takes botocore's own path. Only this
    server process does this: chalicelib runs unchanged, as in Lambda."""
    from botocore import parsers

    base = parsers.PROTOCOL_PARSERS["json"]
    if getattr(base, "_rollcall_fast", False):
        return base

    class FastJSONParser(base):
        _rollcall_fast = True

        def _handle_structure(self, shape, value):
            if shape.name == "AttributeValue":
                try:
                    return _parsed_value(value, self._blob_parser)
                except _NotPlain:
                    pass
            return super()._handle_structure(shape, value)

        def _handle_map(self, shape, value):
            if shape.value.name == "AttributeValue" and isinstance(value, dict):
                try:
                    return {k: _parsed_value(v, self._blob_parser) for k, v in value.items()}
                except _NotPlain:
                    pass
            return super()._handle_map(shape, value)

    parsers.PROTOCOL_PARSERS["json"] = FastJSONParser
    return FastJSONParser


def make_server(host, port, stage="dev"):
    """A chalice.local.LocalDevServer for the project's app (not started):
    a thread per connection, kept-alive connections, a real listen backlog."""
    from botocore.config import Config
    from chalice.cli.factory import CLIFactory
    from chalice.deploy.validate import validate_routes
    from chalice.local import (ChaliceRequestHandler, CustomLocalChalice, LocalChalice,
                               LocalDevServer, ThreadedHTTPServer)

    from chalicelib import clients
    from local.stack import fast_headers, fast_transport

    class Server(ThreadedHTTPServer):
        request_queue_size = LISTEN_BACKLOG
        allow_reuse_address = True

    class Handler(ChaliceRequestHandler):
        # The answer's head and body went out as two small writes, and Nagle's
        # algorithm held the second until the client's delayed ACK: 40 ms added
        # to every answer on a kept-alive connection. Now one buffered write
        # (flushed after each request) without Nagle.
        disable_nagle_algorithm = True
        wbufsize = 64 * 1024

        def log_request(self, code="-", size="-"):
            pass  # the app logs every request itself (one JSON line with its id)

    fast_dynamodb_parser()
    fast_headers.install()
    fast_transport.install()
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
    return LocalDevServer(app, config, host, port, handler_cls=Handler, server_cls=Server)


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
