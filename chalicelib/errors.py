"""Domain errors: one class per kind of refusal, each with a stable ``code``.

Domain code raises these and knows nothing of HTTP; :mod:`chalicelib.http`
maps each kind to its status code (``HTTP_STATUS``) and the one error shape
``{"error": {"code", "message", "details"?}}``. Subclass a kind for a specific
refusal (``class UnknownSession(NotFound): code = "session_not_found"``), or
pass ``code=`` for a one-off.

The base derives from Chalice's ``ChaliceUnhandledError`` only because that
is the one exception Chalice lets through to middleware untouched.
"""
from chalice.app import ChaliceUnhandledError


class ConfigurationError(RuntimeError):
    """The deployment is misconfigured (a missing or invalid setting)."""


class RollcallError(ChaliceUnhandledError):
    """A request Rollcall refuses, with a sentence the person can act on."""

    code = "error"

    def __init__(self, message, code=None, headers=None, details=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.headers = headers or {}
        self.details = details

    def body(self):
        error = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


class InvalidInput(RollcallError):
    """The request itself is malformed or a field breaks its rules."""
    code = "bad_request"


class NotSignedIn(RollcallError):
    """No valid sign-in (missing, expired or revoked token; wrong password)."""
    code = "unauthorized"


class NotAllowed(RollcallError):
    """Signed in, but this user may not do this."""
    code = "forbidden"


class NotFound(RollcallError):
    """The thing named does not exist (or is not visible to this user)."""
    code = "not_found"


class Conflict(RollcallError):
    """The thing exists already, or is not in a state that allows this."""
    code = "conflict"


class TooLarge(RollcallError):
    """The request body is larger than any valid one."""
    code = "payload_too_large"


class Unusable(RollcallError):
    """Well-formed, but the content cannot be used (a photo without a face)."""
    code = "unprocessable"


class TooManyAttempts(RollcallError):
    """Refused for a while to slow down guessing (``Retry-After`` says how long)."""
    code = "too_many_requests"


# -- specific refusals that several modules raise ------------------------------------
class UnknownStudent(NotFound):
    code = "unknown_student"


class UnknownSession(NotFound):
    code = "session_not_found"


class DuplicateStudentId(Conflict):
    code = "duplicate_student_id"


class PasswordChangeRequired(NotAllowed):
    """The user signed in with a one-time password and has not chosen their own yet."""
    code = "password_change_required"


class WrongState(Conflict):
    """The session (or other record) is not in a state that allows this step."""
