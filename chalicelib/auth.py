"""Sign-in and the per-request identity check.

:class:`Authenticator` answers ``POST /auth/login``: the same answer, and the
same work (one password hash, the same conditional writes), for an unknown
email, a wrong password and a locked account, so none can be told from the
others; at most a few passwords are checked per account before it locks for
a while (see :mod:`chalicelib.users`). :meth:`Authenticator.identify` checks the bearer
token of every other request; it runs in the app's HTTP middleware (not an
API Gateway authorizer) so that 401 and 403 answers carry CORS headers.
"""
import math

from chalicelib import passwords
from chalicelib.errors import InvalidInput, NotAllowed, NotSignedIn, TooManyAttempts
from chalicelib.tokens import InvalidToken

#: Routes anyone may call (resource paths as Chalice names them).
PUBLIC_ROUTES = frozenset({"/auth/login", "/health"})

_BAD_CREDENTIALS = ("The email or password is not right. After several failed sign-ins an "
                    "account waits a little before it can sign in again.")


class Authenticator:
    def __init__(self, users, tokens, logger=None):
        self._users = users
        self._tokens = tokens
        self._log = logger

    def login(self, email, password):
        """A token for valid credentials of an unlocked account; 401 otherwise."""
        user = self._users.get(email)
        # Taken before the password is checked: a burst of guesses cannot all be checked.
        taken = self._users.take_attempt(email)
        if user is None or taken is None:
            passwords.burn_time(password)
            if user is not None and self._log:
                self._log.warning("sign-in refused: account locked", extra={"user": user["email"]})
            raise self._refused()
        if not passwords.verify_password(user["password_hash"], password):
            locked_until = self._users.record_failure(user, taken)
            if self._log:
                self._log.warning("sign-in failed", extra={"user": user["email"],
                                                           "locked_until": locked_until})
            raise self._refused()
        if not self._users.succeed(user):
            raise self._refused()  # locked by concurrent failures meanwhile
        if user.get("disabled"):
            # Said only to someone who knows the password.
            raise NotSignedIn("This account is disabled. Ask an administrator.",
                              code="account_disabled")
        return self._signed_in(user)

    def _signed_in(self, user):
        token, expires_at = self._tokens.issue(user)
        return {"token": token, "expires_at": expires_at, "user": _identity(user)}

    def change_password(self, accounts, email, current, new):
        """A user's own new password: the current one is checked (and a wrong one
        counts towards the lock, as at sign-in); answers a fresh sign-in, since
        the change ends every token the user had."""
        user = self._users.get(email)
        taken = self._users.take_attempt(email)
        if taken is None:
            passwords.burn_time(current)
            raise self._locked(self._users.get(email))
        if not passwords.verify_password(user["password_hash"], current):
            if self._users.record_failure(user, taken):
                raise self._locked(self._users.get(email))
            raise InvalidInput("The current password is not right.", code="wrong_password",
                               details={"field": "current_password"})
        if not self._users.succeed(user):
            raise self._locked(self._users.get(email))
        return self._signed_in(accounts.change_own_password(email, new))

    def _locked(self, user):
        """429 for a signed-in user whose account is locked (they know it exists)."""
        until = (user or {}).get("locked_until") or self._users._clock()
        minutes = max(1, math.ceil((until - self._users._clock()) / 60))
        unit = "minute" if minutes == 1 else "minutes"
        return TooManyAttempts(
            f"Too many wrong passwords. Try again in {minutes} {unit}.",
            code="account_locked", headers={"Retry-After": str(minutes * 60)})

    @staticmethod
    def _refused():
        return NotSignedIn(_BAD_CREDENTIALS, code="invalid_credentials")

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
