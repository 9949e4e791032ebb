"""Point-in-time restore of a stage's tables, rehearsed against moto.

moto goes as far as this: it accepts RestoreTableToPointInTime and makes the
new table (with the source's keys, indexes and items), and answers each
table's restorable window. It does not keep history: the restored table holds
the source's items as they are now, whatever time is asked, and its window is
the instant recovery was turned on. So these tests prove the plan, the
question, the calls (their times are checked as sent), the waiting, recovery
turned on for the new tables, and the switch of the stage's names (and back);
that the data is the data of that time is AWS's part.
"""
import datetime
import io
import json
import shutil

import pytest

from chalicelib.schema import table_specs
from ops.restore import (RESTORED, RestoreError, Restorer, current_tables, parse_time,
                         restored_name)
from ops.stage_config import CONFIG_PATH, stage_environment


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.json"
    shutil.copy(CONFIG_PATH, path)
    return path


@pytest.fixture
def sent(provisioned):
    """The RestoreTableToPointInTime requests, as boto3 sends them."""
    requests = []
    provisioned.client("dynamodb").meta.events.register(
        "provide-client-params.dynamodb.RestoreTableToPointInTime",
        lambda params, **_: requests.append(dict(params)))
    return requests


def _restorer(clients, config, answer=True, **options):
    out = io.StringIO()
    asked = []

    def ask():
        asked.append(out.getvalue())
        return answer
    return Restorer("dev", clients, out=out, ask=ask, path=config, delay=0, **options), out, asked


def _tables(clients):
    return set(clients.client("dynamodb").list_tables()["TableNames"])


def test_restore_plans_asks_restores_into_new_tables_and_switches_the_stage(
        provisioned, settings, config, sent):
    users = provisioned.table(settings.users_table)
    users.put_item(Item={"email": "ada@example.org", "role": "admin", "listed": "user"})
    before = current_tables("dev", config)
    restorer, out, asked = _restorer(provisioned, config)
    plan = restorer.restore()
    # It said what it would do before asking.
    assert len(asked) == 1
    for variable, name in before.items():
        assert f"{name}  ->  {name}{RESTORED}" in asked[0]
    assert "make deploy STAGE=dev" in asked[0]
    assert {request["SourceTableName"] for request in sent} == set(before.values())
    assert all(request["UseLatestRestorableTime"] for request in sent)
    dynamodb = provisioned.client("dynamodb")
    for variable, (source, target) in plan.items():
        assert source == before[variable] and target.startswith(source + RESTORED)
        table = dynamodb.describe_table(TableName=target)["Table"]
        assert table["TableStatus"] == "ACTIVE"
        wanted = set(table_specs(settings)[source].get("indexes", {}))
        assert {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])} == wanted
        backups = dynamodb.describe_continuous_backups(TableName=target)
        assert backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"][
            "PointInTimeRecoveryStatus"] == "ENABLED"
    restored_users = plan["USERS_TABLE"][1]
    assert provisioned.table(restored_users).get_item(
        Key={"email": "ada@example.org"})["Item"]["role"] == "admin"
    # The stage now names the restored tables; the old ones are remembered.
    env = stage_environment("dev", config)
    assert {v: env[v] for v in before} == {v: t for v, (_, t) in plan.items()}
    section = json.loads(config.read_text())["stages"]["dev"]
    assert section["rollcall"]["replaced_tables"] == before
    # The tables in use were not touched.
    assert set(before.values()) <= _tables(provisioned)
    assert users.get_item(Key={"email": "ada@example.org"})["Item"]


def test_switch_back_and_forth_deletes_nothing(provisioned, settings, config):
    before = current_tables("dev", config)
    restorer, _, _ = _restorer(provisioned, config)
    plan = restorer.restore()
    restored = {v: t for v, (_, t) in plan.items()}
    tables = _tables(provisioned)
    assert restorer.switch_back() == before
    assert current_tables("dev", config) == before
    assert restorer.switch_back() == restored
    assert current_tables("dev", config) == restored
    assert _tables(provisioned) == tables


def test_a_restore_to_a_time_sends_that_time_and_refuses_one_outside_the_window(
        provisioned, settings, config, sent, monkeypatch):
    restorer, _, _ = _restorer(provisioned, config)
    real_window = Restorer.window

    def an_hour_of_history(self, table):
        # moto's window is the instant each table's recovery was turned on.
        earliest, latest = real_window(self, table)
        return earliest - datetime.timedelta(hours=1), latest
    monkeypatch.setattr(Restorer, "window", an_hour_of_history)
    when = min(restorer.window(table)[1] for table in current_tables("dev", config).values())
    too_late = when + datetime.timedelta(days=1)
    with pytest.raises(RestoreError, match="can be restored to a time from"):
        restorer.restore(too_late)
    assert sent == [] and RESTORED not in json.dumps(_tables(provisioned), default=list)
    plan = restorer.restore(when)
    assert {request["RestoreDateTime"] for request in sent} == {when}
    assert plan["USERS_TABLE"][1] == restored_name(settings.users_table, when)


def test_a_no_to_the_question_changes_nothing(provisioned, config, sent):
    text = config.read_text()
    tables = _tables(provisioned)
    restorer, out, asked = _restorer(provisioned, config, answer=False)
    assert restorer.restore() is None
    assert asked and sent == [] and _tables(provisioned) == tables
    assert config.read_text() == text
    assert "Nothing was restored" in out.getvalue()


def test_a_table_without_recovery_or_a_stage_never_switched_is_refused(provisioned, settings,
                                                                       config):
    restorer, _, _ = _restorer(provisioned, config)
    with pytest.raises(RestoreError, match="nothing to go back to"):
        restorer.switch_back()
    provisioned.client("dynamodb").update_continuous_backups(
        TableName=settings.sessions_table,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False})
    with pytest.raises(RestoreError, match="has no point-in-time recovery"):
        restorer.restore()


def test_a_second_restore_names_tables_from_the_original_names(settings):
    first = restored_name(settings.users_table, parse_time("2026-11-30T03:00:00Z"))
    second = restored_name(first, parse_time("2026-12-01T04:00:00+01:00"))
    assert first == f"{settings.users_table}{RESTORED}20261130T030000Z"
    assert second == f"{settings.users_table}{RESTORED}20261201T030000Z"
    for wrong in ("yesterday", "2026-11-30T03:00:00"):
        with pytest.raises(RestoreError):
            parse_time(wrong)
