"""What every HTTP part of the local stack does the same way.

Each part is its own process that the launcher stops with SIGTERM (or the
terminal with Ctrl-C): bind, say where it listens, serve until a signal,
close the socket so nothing is left listening.
"""
import signal
import sys
import threading


def bind(make, host, port):
    """``make()``'s server, or None after saying why the port cannot be had."""
    try:
        return make()
    except OSError as error:
        print(f"error: cannot listen on {host}:{port}: {error.strerror}",
              file=sys.stderr, flush=True)
        return None


def serve_until_signalled(server, banner, before_close=None):
    """Serve ``server`` (a socketserver) until SIGTERM or SIGINT, then close it.

    ``before_close`` runs after the last request and before the socket closes
    (moto saves its state there, so a client never sees it half-saved).
    """
    stopping = threading.Event()

    def stop(signum, frame):
        if not stopping.is_set():
            stopping.set()
            # shutdown() waits for serve_forever; it must run on another thread.
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(banner, flush=True)
    server.serve_forever()
    if before_close is not None:
        before_close()
    server.server_close()
