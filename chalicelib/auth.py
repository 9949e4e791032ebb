"""Sign-in and the per-request identity check.

:class:`Authenticator` answers ``POST /auth/login``: the same answer and the
same amount of work for an unknown email and a wrong password, and a lock
after repeated failures. :meth:`Authenticator.identify` checks the bearer
token of every other request; it runs in the app's HTTP middleware (not an
API Gateway authorizer) so that 401 and 403 answers carry CORS headers.
"""
import math

from chalicelib import passwords
from chalicelib.errors import InvalidInput, NotAllowed, NotSignedIn, TooManyAttempts
from chalicelib.tokens import InvalidToken

#: Routes anyone may call (resource paths as Chalice names them).
PUBLIC_ROUTES = frozenset({"/auth/login", "/health"})

_BAD_CREDENTIALS = "The email or password is not right."


class Authenticator:
    def __init__(self, users, tokens, logger=None):
        self._users = users
        self._tokens = tokens
        self._log = logger

    def login(self, email, password):
        """A token for valid credentials; 401 otherwise; 429 while locked."""
        user = self._users.get(email)
        if user is None:
            passwords.burn_time(password)
            raise NotSignedIn(_BAD_CREDENTIALS, code="invalid_credentials")
        locked_until = self._users.locked_until(user)
        if locked_until:
            passwords.burn_time(password)
            raise self._locked(locked_until)
        if not passwords.verify_password(user["password_hash"], password):
            locked_until = self._users.record_failure(user["email"])
            if self._log:
                self._log.warning("sign-in failed", extra={"user": user["email"],
                                                           "locked": bool(locked_until)})
            if locked_until:
                raise self._locked(locked_until)
            raise NotSignedIn(_BAD_CREDENTIALS, code="invalid_credentials")
        if user.get("disabled"):
            # Said only to someone who knows the password.
            raise NotSignedIn("This account is disabled. Ask an administrator.",
                              code="account_disabled")
        self._users.clear_failures(user)
        return self._signed_in(user)

    def _signed_in(self, user):
        token, expires_at = self._tokens.issue(user)
        return {"token": token, "expires_at": expires_at, "user": _identity(user)}

    def change_password(self, accounts, email, current, new):
        """A user's own new password: the current one is checked (and a wrong one
        counts towards the lock, as at sign-in); answers a fresh sign-in, since
        the change ends every token the user had."""
        user = self._users.get(email)
        locked_until = self._users.locked_until(user)
        if locked_until:
            passwords.burn_time(current)
            raise self._locked(locked_until)
        if not passwords.verify_password(user["password_hash"], current):
            locked_until = self._users.record_failure(email)
            if locked_until:
                raise self._locked(locked_until)
            raise InvalidInput("The current password is not right.", code="wrong_password",
                               details={"field": "current_password"})
        return self._signed_in(accounts.change_own_password(email, new))

    def _locked(self, until):
        minutes = max(1, math.ceil((until - self._users._clock()) / 60))
        unit = "minute" if minutes == 1 else "minutes"
        return TooManyAttempts(
            f"Too many failed sign-ins. Try again in {minutes} {unit}.",
            code="account_locked", headers={"Retry-After": str(minutes * 60)})

    def identify(self, authorization_header):
        """The signed-in user ``{"email", "role"}`` for a request, or 401.

        The user is looked up on every request so that a removed account or
        a changed password ends its tokens at once.
        """
        if not authorization_header or not authorization_header.startswith("Bearer "):
            raise NotSignedIn("Sign in first.", code="missing_token",
                               headers={"WWW-Authenticate": "Bearer"})
        try:
            claims = self._tokens.verify(authorization_header[len("Bearer "):].strip())
        except InvalidToken:
            raise NotSignedIn("Your sign-in has expired or is not valid. Sign in again.",
                               code="invalid_token", headers={"WWW-Authenticate": "Bearer"})
        user = self._users.get(claims["sub"])
        if (user is None or user.get("disabled")
                or int(user.get("token_version", 1)) != claims["ver"]):
            raise NotSignedIn("Your sign-in is no longer valid. Sign in again.",
                              code="invalid_token", headers={"WWW-Authenticate": "Bearer"})
        return _identity(user)


def _identity(user):
    """The signed-in user as requests carry it (``must_change_password`` when the
    password is a generated one-time one)."""
    return {"email": user["email"], "role": user["role"],
            "must_change_password": bool(user.get("must_change_password"))}


def require_role(user, role):
    """403 unless ``user`` has ``role`` (admins may do everything)."""
    if user["role"] != role and user["role"] != "admin":
        raise NotAllowed(f"Only a user with the {role} role may do this.",
                        code="forbidden")
