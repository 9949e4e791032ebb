"""The HTTP middleware: identity, one error shape, CORS, and access logs.

Chalice runs :func:`handle_request` around every route. It checks the token
(except on :data:`chalicelib.auth.PUBLIC_ROUTES`) and that a one-time password
was replaced (:func:`require_own_password`), turns domain errors
(:mod:`chalicelib.errors`, through :data:`HTTP_STATUS`, the one mapping from a
kind of refusal to a status code) and Chalice's own error bodies into
``{"error": {"code", "message"}}``, adds CORS
headers to every answer (errors included), and logs one JSON line.
"""
import time
import uuid

from chalice import Response

from chalicelib.auth import PUBLIC_ROUTES
from chalicelib import errors
from chalicelib.logs import request_id_var

USER_CONTEXT_KEY = "rollcall_user"
#: All a user whose password is a one-time one may call: who they are, and
#: changing it (signing out needs no call: the site forgets the token).
ONE_TIME_PASSWORD_ROUTES = frozenset({"/auth/me", "/auth/password"})

# Chalice's own error codes (405, 415, 500, ...) mapped to ours.
_CHALICE_CODES = {
    "MethodNotAllowedError": "method_not_allowed",
    "UnsupportedMediaType": "unsupported_media_type",
    "InternalServerError": "internal_error",
    "BadRequest": "bad_request",
    "BadRequestError": "bad_request",
    "NotFoundError": "not_found",
}


def current_user(request):
    """The signed-in user of ``request`` (set by the middleware)."""
    return request.context[USER_CONTEXT_KEY]


#: Each kind of domain refusal and its status; a subclass takes its kind's.
HTTP_STATUS = {
    errors.InvalidInput: 400,
    errors.NotSignedIn: 401,
    errors.NotAllowed: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.TooLarge: 413,
    errors.Unusable: 422,
    errors.TooManyAttempts: 429,
}


def status_of(error):
    """The HTTP status of a domain error: its nearest kind's in :data:`HTTP_STATUS`."""
    for kind in type(error).__mro__:
        if kind in HTTP_STATUS:
            return HTTP_STATUS[kind]
    return 500


def error_response(error):
    return Response(body=error.body(), status_code=status_of(error), headers=dict(error.headers))


def _normalise(response):
    body = response.body
    if isinstance(body, dict) and set(body) == {"Code", "Message"}:
        code = _CHALICE_CODES.get(body["Code"], "error")
        message = body["Message"]
        if response.status_code >= 500:
            message = "Something went wrong on our side. Try again, and tell us if it keeps happening."
        response.body = {"error": {"code": code, "message": message}}
    return response


def cors_headers(origin):
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Headers": "Authorization,Content-Type",
        "Access-Control-Allow-Methods": "GET,POST,PATCH,DELETE,OPTIONS",
        "Access-Control-Expose-Headers": "X-Request-Id,Retry-After",
        "Vary": "Origin",
    }


def require_own_password(user, path):
    """403 ``password_change_required`` on every route but :data:`ONE_TIME_PASSWORD_ROUTES`
    while ``user`` still has a generated one-time password (a new account, a reset)."""
    if user.get("must_change_password") and path not in ONE_TIME_PASSWORD_ROUTES:
        raise errors.PasswordChangeRequired(
            "Choose a password of your own first: you signed in with a one-time password.")


def handle_request(request, get_response, *, authenticator, site_origin, logger):
    """Run one request through identity, the view, error shaping and logging."""
    request_id = request.context.get("requestId") or str(uuid.uuid4())
    token = request_id_var.set(request_id)
    started = time.perf_counter()
    user = None
    try:
        if request.method != "OPTIONS" and request.path not in PUBLIC_ROUTES:
            user = authenticator().identify(request.headers.get("authorization"))
            request.context[USER_CONTEXT_KEY] = user
            require_own_password(user, request.path)
        response = get_response(request)
    except errors.RollcallError as error:
        response = error_response(error)
    except Exception:  # noqa: BLE001 - the last line of defence: log, answer 500
        logger.exception("unhandled error", extra={"path": request.path})
        response = Response(body={"Code": "InternalServerError", "Message": ""},
                            status_code=500)
    try:
        response = _normalise(response)
        for name, value in cors_headers(site_origin()).items():
            response.headers.setdefault(name, value)
        # Lets a person quote the id of a failed call, and ops find its log lines.
        response.headers["X-Request-Id"] = request_id
        logger.info("request", extra={
            "method": request.method, "path": request.path,
            "status": response.status_code, "user": user and user["email"],
            "duration_ms": round((time.perf_counter() - started) * 1000, 1)})
        return response
    finally:
        request_id_var.reset(token)
