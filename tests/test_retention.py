"""Retention: the sweep deletes exactly the videos and crops that are past their time,
and reads only those (sparse indexes by completion time, never a scan)."""
import datetime

import pytest

from chalicelib.retention import Retention
from chalicelib.sessions import with_index_attributes
from chalicelib.settings import load_settings
from ops.provision import Provisioner

NOW = datetime.datetime(2026, 6, 30, 12, 0, tzinfo=datetime.timezone.utc)


def days_ago(days, hours=0):
    return (NOW - datetime.timedelta(days=days, hours=hours)).isoformat(timespec="seconds")


@pytest.fixture
def world(services):
    table = services.clients.table(services.settings.sessions_table)
    s3 = services.clients.client("s3")
    bucket = services.settings.videos_bucket

    def session(sid, status="COMPLETED", indexed=True, **fields):
        """A stored session (``indexed=False``: as written before the indexes existed)."""
        sid = sid.ljust(32, "0")
        item = {"session_id": sid, "status": status, "title": sid, "evidence_status": "ready",
                **fields}
        table.put_item(Item=with_index_attributes(item) if indexed else item)
        s3.put_object(Bucket=bucket, Key=f"videos/{sid}/video.mp4", Body=b"v")
        s3.put_object(Bucket=bucket, Key=f"evidence/{sid}/student-a-best.jpg", Body=b"j")
        return sid

    def left(prefix):
        return sorted(o["Key"].split("/")[1][:8] for o in s3.list_objects_v2(
            Bucket=bucket, Prefix=prefix).get("Contents", []))

    def sweeper(video_days, crop_days):
        return Retention(store=services.session_store, videos=services.videos,
                         crops=services.evidence_files, video_days=video_days,
                         crop_days=crop_days, logger=services.logger, clock=lambda: NOW)
    return session, left, sweeper, table


def test_the_sweep_deletes_exactly_what_is_due(world):
    session, left, sweeper, table = world
    session("aaaaaaaa", completed_at=days_ago(31))           # video due
    session("bbbbbbbb", completed_at=days_ago(29, 23))       # not yet
    session("cccccccc", completed_at=days_ago(400))          # video and crops due
    session("dddddddd", status="PROCESSING", updated_at=days_ago(90))  # never completed
    session("eeeeeeee", updated_at=days_ago(45))             # completed before completed_at
    answer = sweeper(video_days=30, crop_days=365).sweep()
    assert answer == {"videos": 3, "crops": 1}
    assert left("videos/") == ["bbbbbbbb", "dddddddd"]
    assert left("evidence/") == ["aaaaaaaa", "bbbbbbbb", "dddddddd", "eeeeeeee"]
    item = table.get_item(Key={"session_id": "aaaaaaaa".ljust(32, "0")})["Item"]
    assert item["video_deleted_at"] == item["updated_at"]
    item = table.get_item(Key={"session_id": "cccccccc".ljust(32, "0")})["Item"]
    assert item["evidence_status"] == "deleted" and "evidence_cut" not in item
    # A second run finds nothing due.
    assert sweeper(video_days=30, crop_days=365).sweep() == {"videos": 0, "crops": 0}


def test_crops_are_kept_as_long_as_the_session_by_default(world):
    session, left, sweeper, _ = world
    session("aaaaaaaa", completed_at=days_ago(3000))
    assert sweeper(video_days=30, crop_days=0).sweep() == {"videos": 1, "crops": 0}
    assert left("evidence/") == ["aaaaaaaa"]
    assert sweeper(video_days=0, crop_days=0).due() == ([], [])


def test_the_defaults_are_thirty_days_for_videos_and_the_session_for_crops(aws_env):
    settings = load_settings()
    assert (settings.video_retention_days, settings.crop_retention_days) == (30, 0)


def test_the_scheduled_handler_runs_the_sweep(api, services, world):
    session, left, _, _ = world
    session("aaaaaaaa", completed_at="2020-01-01T00:00:00+00:00")
    api.lambda_.invoke("sweep_retention", {"version": "0", "id": "1", "detail-type":
                                           "Scheduled Event", "source": "aws.events",
                                           "account": "1", "time": "2026-01-01T00:00:00Z",
                                           "region": "us-east-1", "resources": [], "detail": {}})
    assert left("videos/") == []


def _reads(services):
    """DynamoDB operations on the sessions table and the items each answered."""
    client = services.clients.table(services.settings.sessions_table).meta.client
    calls = []

    def record(http_response, parsed, model, **kwargs):
        calls.append((model.name, len(parsed.get("Items", []))))
    client.meta.events.register("after-call.dynamodb", record)
    return calls


def test_the_sweep_reads_only_what_is_due(world, services):
    session, left, sweeper, _ = world
    for n in range(40):  # swept long ago, or not due yet: never read again
        session(f"old{n:05d}", completed_at=days_ago(300), video_deleted_at=days_ago(200),
                evidence_status="deleted")
        session(f"new{n:05d}", completed_at=days_ago(2))
    session("aaaaaaaa", completed_at=days_ago(100))
    calls = _reads(services)
    assert sweeper(video_days=30, crop_days=90).sweep() == {"videos": 1, "crops": 1}
    assert not [name for name, _ in calls if name == "Scan"]
    assert sum(n for name, n in calls if name == "Query") == 2  # its video, its crops
    assert "aaaaaaaa" not in left("videos/") and len(left("videos/")) == 80
    calls.clear()
    assert sweeper(video_days=30, crop_days=90).sweep() == {"videos": 0, "crops": 0}
    assert sum(n for name, n in calls if name == "Query") == 0


def test_sessions_stored_before_the_indexes_are_swept_once_provisioning_backfills(
        world, services):
    session, left, sweeper, table = world
    session("aaaaaaaa", indexed=False, completed_at=days_ago(31))
    session("bbbbbbbb", indexed=False, completed_at=days_ago(2))
    session("cccccccc", indexed=False, status="PROCESSING", updated_at=days_ago(90))
    assert sweeper(video_days=30, crop_days=0).sweep() == {"videos": 0, "crops": 0}
    provisioner = Provisioner(services.settings, services.clients)
    provisioner.backfill()
    assert ("items", f"{services.settings.sessions_table} (3)", "updated") in provisioner.report
    item = table.get_item(Key={"session_id": "cccccccc".ljust(32, "0")})["Item"]
    assert item["live"] == "PROCESSING" and "video_kept" not in item
    assert sweeper(video_days=30, crop_days=0).sweep() == {"videos": 1, "crops": 0}
    assert left("videos/") == ["bbbbbbbb", "cccccccc"]
    again = Provisioner(services.settings, services.clients)
    again.backfill()
    assert again.report == []  # nothing left to bring up to date


def test_crops_cut_after_a_sweep_are_swept_in_their_turn(world, services):
    session, left, sweeper, table = world
    sid = session("aaaaaaaa", completed_at=days_ago(400), job_id="job-1")
    assert sweeper(video_days=30, crop_days=90).sweep() == {"videos": 1, "crops": 1}
    # A late, redelivered request cuts the crops again.
    assert services.session_store.set_evidence(sid, "job-1", "ready", ["student-a-best.jpg"])
    services.clients.client("s3").put_object(Bucket=services.settings.videos_bucket,
                                             Key=f"evidence/{sid}/student-a-best.jpg", Body=b"j")
    assert sweeper(video_days=30, crop_days=90).sweep() == {"videos": 0, "crops": 1}
    assert left("evidence/") == []


class CutAgainWhileSwept:
    """The crops' files, with the crops cut again (a late, redelivered request)
    just after the sweep deleted the session's ones, before it marks the session."""

    def __init__(self, files, services, job_id):
        self._files, self._services, self._job_id = files, services, job_id

    def __getattr__(self, name):
        return getattr(self._files, name)

    def delete_session(self, session_id):
        self._files.delete_session(session_id)
        self._services.clients.client("s3").put_object(
            Bucket=self._services.settings.videos_bucket,
            Key=f"evidence/{session_id}/student-b-best.jpg", Body=b"j")
        assert self._services.session_store.set_evidence(session_id, self._job_id, "ready",
                                                        ["student-b-best.jpg"])


def test_crops_cut_while_the_sweep_deletes_stay_for_the_next_sweep(world, services):
    session, left, sweeper, table = world
    sid = session("aaaaaaaa", completed_at=days_ago(400), job_id="job-1",
                  evidence_cut={"student-a-best.jpg"})
    racing = Retention(store=services.session_store, videos=services.videos,
                       crops=CutAgainWhileSwept(services.evidence_files, services, "job-1"),
                       video_days=30, crop_days=90, logger=services.logger, clock=lambda: NOW)

    assert racing.sweep() == {"videos": 1, "crops": 0}

    assert left("evidence/") == ["aaaaaaaa"]  # the crops cut again
    item = table.get_item(Key={"session_id": sid})["Item"]
    assert item["evidence_status"] == "ready" and item["crops_kept"] == "crops"
    assert "student-b-best.jpg" in item["evidence_cut"]
    # The next sweep takes them.
    assert sweeper(video_days=30, crop_days=90).sweep() == {"videos": 0, "crops": 1}
    assert left("evidence/") == []
    item = table.get_item(Key={"session_id": sid})["Item"]
    assert item["evidence_status"] == "deleted" and "crops_kept" not in item
    assert "evidence_cut" not in item
