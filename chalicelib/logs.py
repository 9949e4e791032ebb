"""JSON-line logs with the request id, for CloudWatch Logs Insights.

One line per event: ``{"time", "level", "logger", "message", "request_id", ...}``
plus whatever ``extra=`` carried. Keys that could hold a secret are masked
before anything is written, whatever the caller passed.
"""
import contextvars
import datetime
import json
import logging
import sys

request_id_var = contextvars.ContextVar("request_id", default=None)

# Any extra whose key contains one of these is masked.
_SECRET_WORDS = ("password", "token", "secret", "authorization", "cookie", "credential")
# LogRecord's own attributes: everything else on a record came from `extra=`.
_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _mask(key, value):
    if any(word in key.lower() for word in _SECRET_WORDS):
        return "[redacted]"
    return value


class JsonFormatter(logging.Formatter):
    def format(self, record):
        line = {
            "time": datetime.datetime.fromtimestamp(
                record.created, datetime.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id_var.get(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                line[key] = _mask(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time (Lambda, tests, a pipe)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


# Not "rollcall": Chalice gives its own plain-text logger the app's name.
def get_logger(name="rollcall.app"):
    """The app's JSON logger (configured once; handlers are not duplicated)."""
    logger = logging.getLogger(name)
    if not any(getattr(h, "_rollcall", False) for h in logger.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(JsonFormatter())
        handler._rollcall = True
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger
