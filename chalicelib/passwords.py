"""Password hashing with werkzeug's scrypt; plain passwords are never kept.

:func:`burn_time` does the same work as a real check so that an unknown email
and a wrong password take the same time to answer.
"""
import secrets

from werkzeug.security import check_password_hash, generate_password_hash

METHOD = "scrypt"
MIN_LENGTH = 10
MAX_LENGTH = 256

# Hash of a random value, computed once, checked against for unknown users.
_DUMMY_HASH = None


def hash_password(password):
    return generate_password_hash(password, method=METHOD)


def verify_password(password_hash, password):
    return check_password_hash(password_hash, password)


def burn_time(password):
    """Spend the time of one real verification; always False."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
    check_password_hash(_DUMMY_HASH, password)
    return False


def check_strength(password):
    """A reason the password is unacceptable, or None."""
    if len(password) < MIN_LENGTH:
        return f"A password needs at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"A password may have at most {MAX_LENGTH} characters."
    return None


def generate_password():
    """A random password strong enough for a first admin account."""
    return secrets.token_urlsafe(15)
