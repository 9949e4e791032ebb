"""Signed, expiring sign-in tokens (JWT, HS256 only).

The secret lives in an SSM SecureString (made by provisioning) and is read
once per Lambda container. Decoding pins the algorithm, so ``alg: none`` or an
RS/HS confusion is rejected, and requires every claim we rely on.
"""
import threading
import time

import jwt

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("sub", "role", "iat", "exp", "ver")


class InvalidToken(Exception):
    """The token is missing, malformed, forged or expired."""


class SsmSecret:
    """The token secret, fetched lazily from SSM Parameter Store."""

    def __init__(self, ssm_client, parameter_name):
        self._ssm = ssm_client
        self._name = parameter_name
        self._value = None
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            if self._value is None:
                answer = self._ssm.get_parameter(Name=self._name, WithDecryption=True)
                self._value = answer["Parameter"]["Value"]
            return self._value


class TokenService:
    def __init__(self, secret_provider, ttl_seconds, clock=time.time):
        self._secret = secret_provider
        self._ttl = ttl_seconds
        self._clock = clock

    def issue(self, user):
        now = int(self._clock())
        claims = {"sub": user["email"], "role": user["role"], "iat": now,
                  "exp": now + self._ttl, "ver": int(user.get("token_version", 1))}
        return jwt.encode(claims, self._secret(), algorithm=ALGORITHM), claims["exp"]

    def verify(self, token):
        """The token's claims, or :class:`InvalidToken`."""
        try:
            return jwt.decode(token, self._secret(), algorithms=[ALGORITHM],
                              options={"require": list(REQUIRED_CLAIMS)})
        except jwt.PyJWTError as error:
            raise InvalidToken(str(error)) from None
