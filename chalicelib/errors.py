"""The one error shape every failure takes: ``{"error": {"code", "message"}}``.

Views raise :class:`ApiError` (or a subclass); the HTTP middleware in
:mod:`chalicelib.http` turns it into a JSON response with the right status.
``ApiError`` derives from Chalice's ``ChaliceUnhandledError`` because that is
the one exception Chalice lets through to middleware untouched.
"""
from chalice.app import ChaliceUnhandledError


class ConfigurationError(RuntimeError):
    """The deployment is misconfigured (a missing or invalid setting)."""


class ApiError(ChaliceUnhandledError):
    status = 400
    code = "bad_request"

    def __init__(self, message, code=None, status=None, headers=None, details=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}
        self.details = details

    def body(self):
        error = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class Unprocessable(ApiError):
    status, code = 422, "unprocessable"


class TooManyRequests(ApiError):
    status, code = 429, "too_many_requests"
