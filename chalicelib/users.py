"""Accounts: the users table and the failed-sign-in counter.

Items: ``email`` (lower-cased, the key), ``password_hash``, ``role``,
``token_version`` (bumped on password change so old tokens stop working),
``failed_attempts`` + ``failures_since`` (the current 15-minute window),
``locked_until`` (epoch seconds), ``lock_streak`` (locks in a row, for the
backoff), ``disabled`` (an admin turned the account off: it cannot sign in
and its tokens end), ``must_change_password`` (set with a generated one-time
password; cleared when the user picks their own), ``listed`` (for the
admin's paged list).

Lockout invariant: at most :data:`MAX_FAILURES` passwords are checked per
account and window, however many sign-ins arrive at once. Each attempt first
takes a slot with one conditional update (:meth:`UserStore.take_attempt`),
refused while the account is locked or its slots are used up; only then is
the password checked. A wrong one that used the last slot locks the account
for 30 s, doubling with each lock in a row up to 15 minutes; a right one
frees the slots only if no lock came meanwhile (:meth:`UserStore.succeed`).

Accounts are added by admins from the site (with a generated password shown
once) or by the CLI (the first admin, recovery).
"""
import re
import time

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from chalicelib import passwords
from chalicelib.dynamo import from_dynamo, is_conditional_failure, query_all
from chalicelib.errors import Conflict, InvalidInput, NotFound
from chalicelib.paging import query_page
from chalicelib.schema import LISTED, USERS_LISTING_INDEX

ROLES = ("admin", "teacher")
EMAIL_PATTERN = r"[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{1,63}"

MAX_FAILURES = 5
FAILURE_WINDOW_SECONDS = 15 * 60
#: The first lock lasts this long; each lock in a row doubles it, up to the longest.
FIRST_LOCK_SECONDS, LONGEST_LOCK_SECONDS = 30, 15 * 60
#: Locks in a row are forgotten after this long without one.
LOCKS_FORGOTTEN_SECONDS = 24 * 3600


def lock_seconds(locks_before):
    """How long the account locks when ``locks_before`` locks came right before."""
    return min(LONGEST_LOCK_SECONDS, FIRST_LOCK_SECONDS * 2 ** min(locks_before, 16))


class UserError(ValueError):
    """A user operation that cannot be done (bad input, unknown user, ...)."""


def normalise_email(email):
    return email.strip().lower()


def index_attributes(item):
    """The list index's attributes of a user item (provisioning backfills them)."""
    return {LISTED: "user"}


def public_user(item):
    item = from_dynamo(item)
    return {"email": item["email"], "role": item["role"],
            "disabled": bool(item.get("disabled")),
            "must_change_password": bool(item.get("must_change_password")),
            "locked_until": item.get("locked_until"), "created_at": item.get("created_at")}


class UserStore:
    def __init__(self, table, clock=time.time):
        self._table = table
        self._clock = clock

    # -- management (CLI) ---------------------------------------------------
    def add(self, email, password, role, must_change=False):
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
                      "created_at": int(self._clock()), "must_change_password": must_change,
                      LISTED: "user"},
                ConditionExpression="attribute_not_exists(email)")
        except ClientError as error:
            if is_conditional_failure(error):
                raise UserError(f"a user {email} already exists")
            raise
        return {"email": email, "role": role}

    def set_password(self, email, password, must_change=False):
        """Change the password, unlock, and end every session of the user.

        ``must_change`` marks a generated one-time password (an admin's reset)."""
        problem = passwords.check_strength(password)
        if problem:
            raise UserError(problem)
        try:
            return from_dynamo(self._table.update_item(
                Key={"email": normalise_email(email)},
                UpdateExpression=("SET password_hash = :h, failed_attempts = :zero, "
                                  "lock_streak = :zero, must_change_password = :must "
                                  "ADD token_version :one "
                                  "REMOVE locked_until, failures_since"),
                ExpressionAttributeValues={":h": passwords.hash_password(password),
                                           ":zero": 0, ":one": 1, ":must": must_change},
                ConditionExpression="attribute_exists(email)",
                ReturnValues="ALL_NEW")["Attributes"])
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

    def set_disabled(self, email, disabled):
        """Turn an account off (its tokens end at once) or on again; the user or None."""
        try:
            return from_dynamo(self._table.update_item(
                Key={"email": normalise_email(email)},
                UpdateExpression="SET disabled = :d ADD token_version :one",
                ConditionExpression="attribute_exists(email)",
                ExpressionAttributeValues={":d": disabled, ":one": 1},
                ReturnValues="ALL_NEW")["Attributes"])
        except ClientError as error:
            if is_conditional_failure(error):
                return None
            raise

    def page(self, *, limit, cursor):
        """Users by email, a page at a time, without secrets (the listing index)."""
        items, next_cursor = query_page(
            self._table, limit=limit, cursor=cursor, key_attributes=("email", LISTED),
            fixed={LISTED: "user"}, IndexName=USERS_LISTING_INDEX,
            KeyConditionExpression="#l = :user", ExpressionAttributeNames={"#l": LISTED},
            ExpressionAttributeValues={":user": "user"})
        return [public_user(item) for item in items], next_cursor

    def list(self):
        """Every user (every page of the listing index), without secrets, sorted by
        email: the CLI's list (accounts are staff, a few hundred at most)."""
        users = query_all(self._table, IndexName=USERS_LISTING_INDEX,
                          KeyConditionExpression=Key(LISTED).eq("user"),
                          ProjectionExpression="email, #r, locked_until",
                          ExpressionAttributeNames={"#r": "role"})
        return [from_dynamo(u) for u in users]  # the index's order is the email's

    def get(self, email):
        item = self._table.get_item(Key={"email": normalise_email(email)},
                                    ConsistentRead=True).get("Item")
        return from_dynamo(item) if item else None

    # -- sign-in bookkeeping ------------------------------------------------
    def take_attempt(self, email):
        """Take one of the window's sign-in slots: the number taken, or None when
        the account is locked, out of slots, or does not exist (nothing to check).

        The same two conditional updates run for an unknown email (they fail
        without writing), so both take the same time."""
        now = int(self._clock())
        key = {"email": normalise_email(email)}
        unlocked = "(attribute_not_exists(locked_until) OR locked_until <= :now)"
        try:
            # A new window starts when there is none or the old one expired.
            self._table.update_item(
                Key=key,
                UpdateExpression="SET failed_attempts = :one, failures_since = :now",
                ConditionExpression=(f"attribute_exists(email) AND {unlocked} AND "
                                     "(attribute_not_exists(failures_since) OR "
                                     "failures_since < :window_start)"),
                ExpressionAttributeValues={":one": 1, ":now": now,
                                           ":window_start": now - FAILURE_WINDOW_SECONDS})
            return 1
        except ClientError as error:
            if not is_conditional_failure(error):
                raise
        try:
            result = self._table.update_item(
                Key=key, UpdateExpression="ADD failed_attempts :one",
                ConditionExpression=(f"attribute_exists(email) AND {unlocked} AND "
                                     "failed_attempts < :most"),
                ExpressionAttributeValues={":one": 1, ":now": now, ":most": MAX_FAILURES},
                ReturnValues="UPDATED_NEW")
        except ClientError as error:
            if is_conditional_failure(error):
                return None
            raise
        return int(result["Attributes"]["failed_attempts"])

    def record_failure(self, user, taken):
        """A wrong password used slot ``taken``; the last slot locks the account.

        Returns the epoch second it is now locked until, or None."""
        if taken < MAX_FAILURES:
            return None
        now = int(self._clock())
        locks = int(user.get("lock_streak") or 0)
        if now - int(user.get("locked_until") or 0) > LOCKS_FORGOTTEN_SECONDS:
            locks = 0
        until = now + lock_seconds(locks)
        try:
            self._table.update_item(
                Key={"email": user["email"]},
                UpdateExpression=("SET locked_until = :until, failed_attempts = :zero, "
                                  "lock_streak = :locks REMOVE failures_since"),
                ConditionExpression="attribute_exists(email) AND failed_attempts >= :most",
                ExpressionAttributeValues={":until": until, ":zero": 0, ":locks": locks + 1,
                                           ":most": MAX_FAILURES})
        except ClientError as error:
            if is_conditional_failure(error):
                return None  # a right password freed the slots meanwhile, or removed
            raise
        return until

    def succeed(self, user):
        """Free the slots after a right password; False if a lock came meanwhile
        (then the sign-in is refused too)."""
        now = int(self._clock())
        try:
            self._table.update_item(
                Key={"email": user["email"]},
                UpdateExpression="SET failed_attempts = :zero, lock_streak = :zero "
                                 "REMOVE failures_since",
                ConditionExpression=("attribute_exists(email) AND "
                                     "(attribute_not_exists(locked_until) OR "
                                     "locked_until <= :now)"),
                ExpressionAttributeValues={":zero": 0, ":now": now})
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True


class Accounts:
    """Accounts as admins manage them from the site, and a user's own password.

    A new or reset account gets a generated one-time password, answered once
    (it is stored only as a hash) and marked ``must_change_password``; the site
    asks the user to pick their own at the next sign-in.
    """

    def __init__(self, store):
        self.store = store

    def add(self, email, role):
        password = passwords.generate_password()
        try:
            user = self.store.add(email, password, role, must_change=True)
        except UserError as error:
            raise _user_problem(error, "email")
        return {"user": public_user(self.store.get(user["email"])), "password": password}

    def reset(self, email):
        password = passwords.generate_password()
        try:
            user = self.store.set_password(email, password, must_change=True)
        except UserError:
            raise NotFound(f"There is no account {normalise_email(email)}.",
                           code="user_not_found")
        return {"user": public_user(user), "password": password}

    def set_disabled(self, acting_email, email, disabled):
        if normalise_email(email) == normalise_email(acting_email) and disabled:
            raise Conflict("You cannot disable your own account.", code="own_account")
        user = self.store.set_disabled(email, disabled)
        if user is None:
            raise NotFound(f"There is no account {normalise_email(email)}.",
                           code="user_not_found")
        return public_user(user)

    def change_own_password(self, email, new_password):
        problem = passwords.check_strength(new_password)
        if problem:
            raise InvalidInput(problem, code="weak_password",
                             details={"field": "new_password"})
        return self.store.set_password(email, new_password, must_change=False)


def _user_problem(error, field):
    message = str(error)
    if "already exists" in message:
        return Conflict(message[0].upper() + message[1:] + ".", code="user_exists",
                        details={"field": field})
    return InvalidInput(message[0].upper() + message[1:] + ".", code="invalid_field",
                      details={"field": field})

