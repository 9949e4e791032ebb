"""Accounts: the users table and the failed-sign-in counter.

Items: ``email`` (lower-cased, the key), ``password_hash``, ``role``,
``token_version`` (bumped on password change so old tokens stop working),
``failed_attempts`` + ``failures_since`` (the current 15-minute window) and
``locked_until`` (epoch seconds). Counter updates are conditional writes so
two concurrent failures cannot both count as the first.
"""
import re
import time

from botocore.exceptions import ClientError

from chalicelib import passwords
from chalicelib.dynamo import from_dynamo, is_conditional_failure, scan_all

ROLES = ("admin", "teacher")
EMAIL_PATTERN = r"[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{1,63}"

MAX_FAILURES = 5
FAILURE_WINDOW_SECONDS = 15 * 60
LOCK_SECONDS = 15 * 60


class UserError(ValueError):
    """A user operation that cannot be done (bad input, unknown user, ...)."""


def normalise_email(email):
    return email.strip().lower()


class UserStore:
    def __init__(self, table, clock=time.time):
        self._table = table
        self._clock = clock

    # -- management (CLI) ---------------------------------------------------
    def add(self, email, password, role):
        email = normalise_email(email)
        if not re.fullmatch(EMAIL_PATTERN, email):
            raise UserError(f"{email!r} is not an email address")
        if role not in ROLES:
            raise UserError(f"role must be one of {', '.join(ROLES)}")
        problem = passwords.check_strength(password)
        if problem:
            raise UserError(problem)
        try:
            self._table.put_item(
                Item={"email": email, "password_hash": passwords.hash_password(password),
                      "role": role, "token_version": 1, "failed_attempts": 0,
                      "created_at": int(self._clock())},
                ConditionExpression="attribute_not_exists(email)")
        except ClientError as error:
            if is_conditional_failure(error):
                raise UserError(f"a user {email} already exists")
            raise
        return {"email": email, "role": role}

    def set_password(self, email, password):
        """Change the password, unlock, and end every session of the user."""
        problem = passwords.check_strength(password)
        if problem:
            raise UserError(problem)
        try:
            self._table.update_item(
                Key={"email": normalise_email(email)},
                UpdateExpression=("SET password_hash = :h, failed_attempts = :zero "
                                  "ADD token_version :one "
                                  "REMOVE locked_until, failures_since"),
                ExpressionAttributeValues={":h": passwords.hash_password(password),
                                           ":zero": 0, ":one": 1},
                ConditionExpression="attribute_exists(email)")
        except ClientError as error:
            if is_conditional_failure(error):
                raise UserError(f"no user {normalise_email(email)}")
            raise

    def remove(self, email):
        try:
            self._table.delete_item(Key={"email": normalise_email(email)},
                                    ConditionExpression="attribute_exists(email)")
        except ClientError as error:
            if is_conditional_failure(error):
                raise UserError(f"no user {normalise_email(email)}")
            raise

    def list(self):
        """Every user (all pages), without secrets, sorted by email."""
        users = scan_all(self._table, ProjectionExpression="email, #r, locked_until",
                         ExpressionAttributeNames={"#r": "role"})
        return sorted((from_dynamo(u) for u in users), key=lambda u: u["email"])

    def get(self, email):
        item = self._table.get_item(Key={"email": normalise_email(email)},
                                    ConsistentRead=True).get("Item")
        return from_dynamo(item) if item else None

    # -- sign-in bookkeeping ------------------------------------------------
    def locked_until(self, user):
        """Epoch seconds the account stays locked, or None."""
        until = user.get("locked_until")
        return until if until and until > self._clock() else None

    def record_failure(self, email):
        """Count a failed sign-in; lock after MAX_FAILURES in the window.

        Returns the epoch second the account is now locked until, or None.
        """
        now = int(self._clock())
        key = {"email": normalise_email(email)}
        try:
            # A new window starts when there is none or the old one expired.
            self._table.update_item(
                Key=key,
                UpdateExpression="SET failed_attempts = :one, failures_since = :now",
                ConditionExpression=("attribute_exists(email) AND "
                                     "(attribute_not_exists(failures_since) OR "
                                     "failures_since < :window_start)"),
                ExpressionAttributeValues={":one": 1, ":now": now,
                                           ":window_start": now - FAILURE_WINDOW_SECONDS})
            count = 1
        except ClientError as error:
            if not is_conditional_failure(error):
                raise
            try:
                result = self._table.update_item(
                    Key=key, UpdateExpression="ADD failed_attempts :one",
                    ConditionExpression="attribute_exists(email)",
                    ExpressionAttributeValues={":one": 1}, ReturnValues="UPDATED_NEW")
            except ClientError as inner:
                if is_conditional_failure(inner):
                    return None  # the user was removed meanwhile
                raise
            count = int(result["Attributes"]["failed_attempts"])
        if count < MAX_FAILURES:
            return None
        until = now + LOCK_SECONDS
        self._table.update_item(
            Key=key,
            UpdateExpression=("SET locked_until = :until, failed_attempts = :zero "
                              "REMOVE failures_since"),
            ConditionExpression="attribute_exists(email)",
            ExpressionAttributeValues={":until": until, ":zero": 0})
        return until

    def clear_failures(self, user):
        """Forget failed attempts after a successful sign-in (only if any)."""
        if not (user.get("failed_attempts") or user.get("locked_until")
                or user.get("failures_since")):
            return
        self._table.update_item(
            Key={"email": user["email"]},
            UpdateExpression="SET failed_attempts = :zero REMOVE locked_until, failures_since",
            ExpressionAttributeValues={":zero": 0})
