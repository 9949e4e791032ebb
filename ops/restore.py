"""Bring a stage's tables back to a point in time (DynamoDB point-in-time recovery).

    python -m ops.restore --stage prod status
    python -m ops.restore --stage prod restore --time 2026-11-30T03:00:00Z   (or --latest)
    python -m ops.restore --stage prod switch --back

``restore`` makes a new table from every table of the stage as it was at that
time (RestoreTableToPointInTime; the tables in use are never touched), named
``<table>-restored-<UTC time>``, waits for them, turns point-in-time recovery
on for them (a restored table starts without it), and switches the stage to
them: the new names go into the stage's ``environment_variables`` in
``.chalice/config.json`` (the single source of names, see
:mod:`ops.stage_config`) and the names it replaced into the stage's
``"rollcall": {"replaced_tables": ...}``. ``make deploy`` then points the
Lambdas (and their policy) at them. ``switch --back`` puts the replaced
names back (and remembers the ones it left, so running it again switches
forth); nothing here deletes a table. It prints what it will do and asks before doing it (``--yes`` skips
the question).

Photos and face crops are not in tables: their buckets keep noncurrent
versions (see ``noncurrent_version_days`` in :mod:`ops.provision`), restored
by copying a version back (docs/OPERATIONS.md). The face collection is not
restored: a person's faces are kept while their record exists; after going
back past a deletion, add the person's photo again (or import an archive).
"""
import argparse
import datetime
import json
import os
import sys
import time

from botocore.exceptions import ClientError

from chalicelib.clients import ClientFactory
from ops.stage_config import (CONFIG_PATH, StageError, aws_session, configured_environment,
                              derived_name, load_config, stage_options)

#: The tables' variables, in the order they are listed.
TABLE_VARIABLES = ("USERS_TABLE", "STUDENTS_TABLE", "CLASSES_TABLE", "MEMBERS_TABLE",
                   "SESSIONS_TABLE", "ATTENDANCE_TABLE")
RESTORED = "-restored-"


class RestoreError(StageError):
    """A restore that cannot be done as asked; the message says why."""


def parse_time(text):
    """An ISO 8601 time with its zone (``Z`` or ``+hh:mm``), as an aware datetime."""
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RestoreError(f"{text!r} is not a time like 2026-11-30T03:00:00Z")
    if value.tzinfo is None:
        raise RestoreError(f"{text!r} has no time zone: add Z for UTC or +hh:mm")
    return value.astimezone(datetime.timezone.utc)


def base_name(table_name):
    """The table's name without an earlier restore's suffix."""
    return table_name.split(RESTORED, 1)[0]


def restored_name(table_name, when):
    return f"{base_name(table_name)}{RESTORED}{when.strftime('%Y%m%dT%H%M%SZ')}"


def current_tables(stage, path=CONFIG_PATH):
    """Variable -> the table the stage uses now (set in the config, else derived)."""
    env = configured_environment(stage, path)
    return {var: env.get(var) or derived_name(stage, var) for var in TABLE_VARIABLES}


def _write_config(config, path):
    text = json.dumps(config, indent=2, ensure_ascii=False) + "\n"
    temp = f"{path}.part"
    with open(temp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temp, path)


def switch_tables(stage, names, replaced, path=CONFIG_PATH):
    """Point ``stage`` at ``names`` (variable -> table) in the config.

    A name equal to the derived one is left out (so a stage that derived its
    names keeps deriving them); ``replaced`` (variable -> name) is kept in the
    stage's ``"rollcall"`` object for ``switch --back``.
    """
    config = load_config(path)
    section = config["stages"][stage]
    env = section.setdefault("environment_variables", {})
    for variable, name in names.items():
        if name == derived_name(stage, variable):
            env.pop(variable, None)
        else:
            env[variable] = name
    section.setdefault("rollcall", {})["replaced_tables"] = dict(replaced)
    _write_config(config, path)


class Restorer:
    """Restores and switches one stage's tables; ``ask`` answers a yes/no question."""

    def __init__(self, stage, clients, out=sys.stdout, ask=None, path=CONFIG_PATH,
                 table_kms=False, delay=5.0, attempts=720):
        self.stage = stage
        self.clients = clients
        self.out = out
        self.ask = ask or _ask_stage_name(stage, out)
        self.path = path
        self.table_kms = table_kms
        self.delay, self.attempts = delay, attempts

    @property
    def dynamodb(self):
        return self.clients.client("dynamodb")

    def say(self, text):
        print(text, file=self.out)

    def window(self, table):
        """``(earliest, latest)`` restorable times of ``table``; refuses without PITR."""
        try:
            answer = self.dynamodb.describe_continuous_backups(TableName=table)
        except ClientError as error:
            raise RestoreError(f"table {table}: {error.response['Error']['Message']}")
        recovery = answer["ContinuousBackupsDescription"].get(
            "PointInTimeRecoveryDescription", {})
        if recovery.get("PointInTimeRecoveryStatus") != "ENABLED":
            raise RestoreError(f"table {table} has no point-in-time recovery (make provision "
                               "turns it on; only changes after that can be undone)")
        return (_as_time(recovery["EarliestRestorableDateTime"]),
                _as_time(recovery["LatestRestorableDateTime"]))

    def status(self):
        for variable, table in current_tables(self.stage, self.path).items():
            earliest, latest = self.window(table)
            self.say(f"{variable:<17} {table}  restorable {earliest:%Y-%m-%d %H:%M:%S} to "
                     f"{latest:%Y-%m-%d %H:%M:%S} UTC")
        replaced = stage_options(self.stage, self.path).get("replaced_tables")
        if replaced:
            self.say("replaced by the last switch (switch --back returns to them): "
                     + ", ".join(replaced.values()))

    def restore(self, when=None):
        """Restore every table to ``when`` (None: the latest restorable time) and switch."""
        tables = current_tables(self.stage, self.path)
        label = when or datetime.datetime.now(datetime.timezone.utc)
        plan = {}
        for variable, table in tables.items():
            earliest, latest = self.window(table)
            if when is not None and not earliest <= when <= latest:
                raise RestoreError(
                    f"{table} can be restored to a time from {earliest:%Y-%m-%d %H:%M:%S} to "
                    f"{latest:%Y-%m-%d %H:%M:%S} UTC, not {when:%Y-%m-%d %H:%M:%S}")
            plan[variable] = (table, restored_name(table, label))
        moment = f"as they were at {when:%Y-%m-%d %H:%M:%S} UTC" if when else \
            "as they are at the latest restorable time (about 5 minutes ago)"
        self.say(f"Stage {self.stage!r}: its tables will be restored {moment} into new "
                 "tables, and the stage switched to them:")
        for variable, (source, target) in plan.items():
            self.say(f"  {source}  ->  {target}")
        self.say("The tables in use are not changed or deleted; `switch --back` returns to "
                 "them. Then run `make deploy STAGE=" + self.stage + "` to point the "
                 "Lambdas at the restored tables.")
        if not self.ask():
            self.say("Nothing was restored.")
            return None
        for variable, (source, target) in plan.items():
            request = {"SourceTableName": source, "TargetTableName": target,
                       "BillingModeOverride": "PAY_PER_REQUEST"}
            if when is None:
                request["UseLatestRestorableTime"] = True
            else:
                request["RestoreDateTime"] = when
            if self.table_kms:
                request["SSESpecificationOverride"] = {"Enabled": True, "SSEType": "KMS"}
            try:
                self.dynamodb.restore_table_to_point_in_time(**request)
                self.say(f"restoring {target}")
            except ClientError as error:
                if error.response["Error"]["Code"] != "TableAlreadyExistsException":
                    raise
                self.say(f"{target} exists already (an earlier run): kept")
        for variable, (source, target) in plan.items():
            self._wait_active(target)
            self.dynamodb.update_continuous_backups(
                TableName=target,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
            self.say(f"ready     {target} (point-in-time recovery on)")
        switch_tables(self.stage, {v: t for v, (_, t) in plan.items()},
                      {v: s for v, (s, _) in plan.items()}, self.path)
        self.say(f"Stage {self.stage!r} now names the restored tables in {self.path}; "
                 f"run `make deploy STAGE={self.stage}` to put them to use.")
        return plan

    def switch_back(self):
        """Return the stage to the tables the last switch replaced (and remember these)."""
        replaced = stage_options(self.stage, self.path).get("replaced_tables")
        if not replaced:
            raise RestoreError(f"stage {self.stage!r} has not been switched to restored "
                               "tables: there is nothing to go back to")
        now = current_tables(self.stage, self.path)
        self.say(f"Stage {self.stage!r} will use these tables again:")
        for variable, name in replaced.items():
            self.say(f"  {now[variable]}  ->  {name}")
        for name in replaced.values():
            self.dynamodb.describe_table(TableName=name)  # still there?
        if not self.ask():
            self.say("Nothing was switched.")
            return None
        switch_tables(self.stage, replaced, now, self.path)
        self.say(f"Switched; run `make deploy STAGE={self.stage}` to put them to use. "
                 "`switch --back` again returns to the ones just left.")
        return replaced

    def _wait_active(self, table):
        for _ in range(self.attempts):
            status = self.dynamodb.describe_table(TableName=table)["Table"]["TableStatus"]
            if status == "ACTIVE":
                return
            time.sleep(self.delay)
        raise RestoreError(f"{table} is still being restored; run the same command again "
                           "later (restores of big tables take hours)")


def _as_time(value):
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.timezone.utc)
    return datetime.datetime.fromtimestamp(float(value), datetime.timezone.utc)


def _ask_stage_name(stage, out):
    def ask():
        print(f"Type the stage name ({stage}) to go on: ", end="", flush=True, file=out)
        return sys.stdin.readline().strip() == stage
    return ask


def main(argv=None, out=sys.stdout):
    parser = argparse.ArgumentParser(prog="python -m ops.restore",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="dev", help="stage in .chalice/config.json")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="the tables in use and the times they can go back to")
    restore = commands.add_parser("restore", help="restore every table into new ones, switch")
    when = restore.add_mutually_exclusive_group(required=True)
    when.add_argument("--time", help="ISO 8601 with a zone, e.g. 2026-11-30T03:00:00Z")
    when.add_argument("--latest", action="store_true", help="the latest restorable time")
    restore.add_argument("--yes", action="store_true", help="do not ask")
    switch = commands.add_parser("switch", help="switch the stage between table sets")
    switch.add_argument("--back", action="store_true", required=True,
                        help="to the tables the last switch replaced")
    switch.add_argument("--yes", action="store_true", help="do not ask")
    args = parser.parse_args(argv)
    try:
        session = aws_session()
        clients = ClientFactory(region=session.region_name,
                                session_factory=lambda region_name: session)
        restorer = Restorer(args.stage, clients, out=out,
                            ask=(lambda: True) if getattr(args, "yes", False) else None,
                            table_kms=bool(stage_options(args.stage).get(
                                "table_kms_encryption", False)))
        if args.command == "status":
            restorer.status()
        elif args.command == "restore":
            done = restorer.restore(None if args.latest else parse_time(args.time))
            return 0 if done else 1
        else:
            return 0 if restorer.switch_back() else 1
    except StageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
