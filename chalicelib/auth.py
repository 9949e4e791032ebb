"""Sign-in and the per-request identity check.

:class:`Authenticator` answers ``POST /auth/login``: the same answer, and the
same work (one password hash, the same conditional writes), for an unknown
email, a wrong password and a locked account, so none can be told from the
others; at most a few passwords are checked per account before it locks for
a while (see :mod:`chalicelib.users`). :meth:`Authenticator.identify` checks the bearer
token of every other request; it runs in the app's HTTP middleware (not an
API Gateway authorizer) so that 401 and 403 answers carry CORS headers.

The user record behind a token is read again at most every
:data:`IDENTITY_MAX_AGE_S` seconds per process (:class:`RecentUsers`): a page
sends several requests at once, and reading the same item for each was 40 %
of the database calls under load. A change made through this process's user
store (disable, password change or reset, removal) ends the user's tokens at
once; one made elsewhere (another Lambda container, the CLI) within that bound.
"""
import math
import threading
import time

from chalicelib import passwords
from chalicelib.errors import InvalidInput, NotAllowed, NotSignedIn, TooManyAttempts
from chalicelib.tokens import InvalidToken

#: Routes anyone may call (resource paths as Chalice names them).
PUBLIC_ROUTES = frozenset({"/auth/login", "/health"})

_BAD_CREDENTIALS = ("The email or password is not right. After several failed sign-ins an "
                    "account waits a little before it can sign in again.")


#: At most this old (seconds) is a user record that lets a token through: an
#: account disabled, removed or given a new password elsewhere is refused
#: within this bound (at once when the change went through this process).
IDENTITY_MAX_AGE_S = 2.0
#: Users remembered at once per process (the one read longest ago dropped first).
IDENTITY_CACHE_SIZE = 1024


class RecentUsers:
    """User records as :meth:`Authenticator.identify` reads them, reused for at most
    ``max_age`` seconds and forgotten on every change made through this process.

    A read that began before a change is not remembered (the generation
    moved on meanwhile), so nothing older than the last change is ever reused.
    """

    def __init__(self, max_age=IDENTITY_MAX_AGE_S, size=IDENTITY_CACHE_SIZE,
                 clock=time.monotonic):
        self._max_age = max_age
        self._size = size
        self._clock = clock
        self._lock = threading.Lock()
        self._users = {}  # email -> (read at, user or None)
        self._generation = 0

    def get(self, email, read):
        """The user ``email``: remembered if read less than ``max_age`` ago, else ``read(email)``."""
        if self._max_age <= 0:
            return read(email)
        now = self._clock()
        with self._lock:
            remembered = self._users.get(email)
            if remembered is not None and now - remembered[0] < self._max_age:
                return remembered[1]
            generation = self._generation
        user = read(email)
        with self._lock:
            if generation == self._generation:
                self._users.pop(email, None)
                self._users[email] = (now, user)
                while len(self._users) > self._size:
                    self._users.pop(next(iter(self._users)))
        return user

    def forget(self):
        """Forget every user (after any change to the users table)."""
        with self._lock:
            self._generation += 1
            self._users.clear()

    def size(self):
        return len(self._users)


class ForgettingUserStore:
    """A user store that makes ``recent`` forget on every change through it.

    Every public method but the reads below is taken to change something
    (so a method added later errs on the safe side).
    """

    # Sign-in bookkeeping changes only lockout fields, which identify never
    # reads: it must not empty the cache (a stream of failed sign-ins would).
    READS = frozenset({"get", "page", "list", "take_attempt", "record_failure", "succeed"})

    def __init__(self, store, recent):
        object.__setattr__(self, "_store", store)
        object.__setattr__(self, "recent", recent)

    def __setattr__(self, name, value):
        setattr(self._store, name, value)  # e.g. a test's clock: the store's

    def __delattr__(self, name):
        delattr(self._store, name)

    def __getattr__(self, name):
        attribute = getattr(self._store, name)
        if name.startswith("_") or name in self.READS or not callable(attribute):
            return attribute

        def changing(*args, **kwargs):
            try:
                return attribute(*args, **kwargs)
            finally:
                self.recent.forget()
        return changing


class Authenticator:
    def __init__(self, users, tokens, logger=None, recent=None):
        self._users = users
        self._tokens = tokens
        self._log = logger
        # A plain store (not a ForgettingUserStore) is read on every request.
        if recent is None:
            recent = getattr(users, "recent", None) or RecentUsers(max_age=0)
        self._recent = recent

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

        The user is looked up (at most :data:`IDENTITY_MAX_AGE_S` old, see
        :class:`RecentUsers`) so that a removed or disabled account or a changed
        password ends its tokens.
        """
        if not authorization_header or not authorization_header.startswith("Bearer "):
            raise NotSignedIn("Sign in first.", code="missing_token",
                               headers={"WWW-Authenticate": "Bearer"})
        try:
            claims = self._tokens.verify(authorization_header[len("Bearer "):].strip())
        except InvalidToken:
            raise NotSignedIn("Your sign-in has expired or is not valid. Sign in again.",
                               code="invalid_token", headers={"WWW-Authenticate": "Bearer"})
        user = self._recent.get(claims["sub"], self._users.get)
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
