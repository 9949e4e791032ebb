"""Retention: how long videos and face crops are kept, and the sweep that deletes them.

Rules (settings, in days; 0 = keep as long as the session):

* a session's **video** (``videos/<session_id>/``, and a converted copy under
  ``converted/<session_id>/``) is deleted
  ``VIDEO_RETENTION_DAYS`` (default 30) after the session completed; the
  attendance, the crops and the session stay, and the session records
  ``video_deleted_at``;
* its **crops** (``evidence/<session_id>/``) are deleted
  ``CROP_RETENTION_DAYS`` after completion (default 0: they go with the
  session, when it is deleted); ``evidence_status`` becomes ``deleted``.

Deleting a session deletes both at once; deleting a person deletes their crops
(:meth:`chalicelib.evidence.Evidence.forget_student`). The sweep runs on a
schedule (``sweep_retention`` in app.py; the local stack's bridge runs it
too). It reads only what it needs (a filtered scan of completed sessions, a
few attributes each) and is idempotent: what it deleted is marked, so a second
run deletes nothing.
"""
import datetime

from boto3.dynamodb.conditions import Attr

from chalicelib.dynamo import scan_all

_FIELDS = "session_id, #status, completed_at, updated_at, video_deleted_at, evidence_status"


def _cutoff(now, days):
    return (now - datetime.timedelta(days=days)).isoformat(timespec="seconds")


class Retention:
    def __init__(self, *, table, store, videos, crops, video_days, crop_days, logger,
                 clock=lambda: datetime.datetime.now(datetime.timezone.utc)):
        self._table = table
        self.store = store
        self.videos = videos
        self.crops = crops
        self.video_days = video_days
        self.crop_days = crop_days
        self.log = logger
        self.clock = clock

    def due(self):
        """``(videos due, crops due)``: the session ids whose files are past their time."""
        if not self.video_days and not self.crop_days:
            return [], []
        now = self.clock()
        videos, crops = [], []
        for item in scan_all(self._table, ProjectionExpression=_FIELDS,
                             ExpressionAttributeNames={"#status": "status"},
                             FilterExpression=Attr("status").eq("COMPLETED")):
            # Sessions completed before completed_at was kept: their last update.
            completed = item.get("completed_at") or item.get("updated_at") or ""
            if self.video_days and not item.get("video_deleted_at") \
                    and completed < _cutoff(now, self.video_days):
                videos.append(item["session_id"])
            if self.crop_days and item.get("evidence_status") not in (None, "deleted") \
                    and completed < _cutoff(now, self.crop_days):
                crops.append(item["session_id"])
        return videos, crops

    def sweep(self):
        """Delete what is due; answers ``{"videos": n, "crops": n}`` (sessions swept)."""
        videos, crops = self.due()
        for session_id in videos:
            self.videos.delete_prefix(f"videos/{session_id}/")
            self.videos.delete_prefix(f"converted/{session_id}/")  # the copy searched
            self.store.mark_video_deleted(session_id)
        for session_id in crops:
            self.crops.delete_session(session_id)
            self.store.mark_crops_deleted(session_id)
        self.log.info("retention sweep", extra={"videos_deleted": len(videos),
                                                 "crops_deleted": len(crops)})
        return {"videos": len(videos), "crops": len(crops)}
