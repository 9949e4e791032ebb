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
too). It reads only what is due: completed sessions keep ``video_kept`` /
``crops_kept`` until their files are deleted, which puts them in sparse
indexes sorted by completion time (:meth:`chalicelib.sessions.SessionStore.kept`),
and the sweep queries those before the cutoff. It is idempotent: deleting
takes the session out of the index, so a second run finds nothing. Crops cut
again while it deletes (a late evidence request) may be deleted with the old
ones, and the session then still shows crops until the next sweep: it marks
a session's crops deleted only if they are the ones it read
(``crops_version``), so a session is never marked as having none while new
ones may stand; the next sweep (they are past their time too) deletes and
marks them.
"""
import datetime

from chalicelib.sessions import CROPS_KEPT, VIDEO_KEPT


def _cutoff(now, days):
    return (now - datetime.timedelta(days=days)).isoformat(timespec="seconds")


class Retention:
    def __init__(self, *, store, videos, crops, video_days, crop_days, logger,
                 clock=lambda: datetime.datetime.now(datetime.timezone.utc)):
        self.store = store  # sessions.SessionStore: the sparse indexes it queries
        self.videos = videos
        self.crops = crops
        self.video_days = video_days
        self.crop_days = crop_days
        self.log = logger
        self.clock = clock

    def due(self):
        """``(videos due, crops due)``: the session ids whose files are past their
        time; for crops, ``(session id, crops_version)`` as the index holds it."""
        if not self.video_days and not self.crop_days:
            return [], []
        now = self.clock()
        videos, crops = [], []
        if self.video_days:
            videos = [item["session_id"] for item in
                      self.store.kept(VIDEO_KEPT, _cutoff(now, self.video_days))]
        if self.crop_days:
            crops = [(item["session_id"], item.get("crops_version")) for item in
                     self.store.kept(CROPS_KEPT, _cutoff(now, self.crop_days))]
        return videos, crops

    def sweep(self):
        """Delete what is due; answers ``{"videos": n, "crops": n}`` (sessions swept;
        one whose crops were cut again meanwhile is left to the next sweep)."""
        videos, crops = self.due()
        for session_id in videos:
            self.videos.delete_prefix(f"videos/{session_id}/")
            self.videos.delete_prefix(f"converted/{session_id}/")  # the copy searched
            self.store.mark_video_deleted(session_id)
        swept = 0
        for session_id, version in crops:
            self.crops.delete_session(session_id)
            if self.store.mark_crops_deleted(session_id, version) is not None:
                swept += 1
        self.log.info("retention sweep", extra={"videos_deleted": len(videos),
                                                 "crops_deleted": swept,
                                                 "crops_left": len(crops) - swept})
        return {"videos": len(videos), "crops": swept}
