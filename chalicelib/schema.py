"""Every DynamoDB table and index, by name: the one place Lambda code and
provisioning read them from (provisioning creates exactly these, and adds an
index missing from a table that already exists).

Lists page through indexes, never scans (see :mod:`chalicelib.paging`):

* ``LISTED`` is a constant per kind of item ("student", "session", ...) so one
  index partition holds them all, sorted by a unique sort key (the item's own
  id is its last part, so no two items share one).
* Sparse indexes hold only the items a scheduled function must find: an
  item is in the index only while it holds the index's key attribute, which
  the code sets when the item starts to need attention and removes when it
  stops (a live session, a video or crops not yet swept). The watchdog and
  the retention sweep read those few, never the whole table.
* Memberships are one table: ``(class_id, member)`` where member is
  ``teacher#<email>`` or ``student#<student_id>``; its ``by_member`` index
  answers a teacher's classes and a person's classes.
"""

#: Attendance rows by person, for one person's history.
ATTENDANCE_BY_STUDENT_INDEX = "by_student"
#: People by normalised name / by lower-cased id (for the list and ``?q=``).
STUDENTS_BY_NAME_INDEX = "by_name"
STUDENTS_BY_ID_INDEX = "by_id_key"
#: Sessions of one class (``class_key``: the class id, or ``-`` for none) by day.
SESSIONS_BY_CLASS_INDEX = "by_class"
#: Every session by day (the admin's list).
SESSIONS_BY_DAY_INDEX = "by_day"
#: Sparse: sessions PROCESSING or CONVERTING (``live`` = the status), for the watchdog.
SESSIONS_LIVE_INDEX = "live"
#: Sparse: completed sessions whose video / crops are still kept, by completion
#: time (``kept_since`` = ``completed_at#session_id``), for the retention sweep.
SESSIONS_VIDEO_KEPT_INDEX = "video_kept"
SESSIONS_CROPS_KEPT_INDEX = "crops_kept"
#: Classes by normalised name (the admin's list).
CLASSES_BY_NAME_INDEX = "by_name"
#: Memberships by member: a teacher's classes, a person's classes.
MEMBERS_BY_MEMBER_INDEX = "by_member"
#: Accounts by email (the admin's list).
USERS_LISTING_INDEX = "listing"

LISTED = "listed"


def table_specs(settings):
    """Key schema of every table and its indexes, by table name."""
    return {
        settings.users_table: {
            "keys": [("email", "HASH", "S")],
            "indexes": {USERS_LISTING_INDEX: [(LISTED, "HASH", "S"), ("email", "RANGE", "S")]},
        },
        settings.students_table: {
            "keys": [("student_id", "HASH", "S")],
            "indexes": {
                STUDENTS_BY_NAME_INDEX: [(LISTED, "HASH", "S"), ("name_key", "RANGE", "S")],
                STUDENTS_BY_ID_INDEX: [(LISTED, "HASH", "S"), ("id_key", "RANGE", "S")],
            },
        },
        settings.sessions_table: {
            "keys": [("session_id", "HASH", "S")],
            "indexes": {
                SESSIONS_BY_CLASS_INDEX: [("class_key", "HASH", "S"), ("day_key", "RANGE", "S")],
                SESSIONS_BY_DAY_INDEX: [(LISTED, "HASH", "S"), ("day_key", "RANGE", "S")],
                SESSIONS_LIVE_INDEX: [("live", "HASH", "S"), ("session_id", "RANGE", "S")],
                SESSIONS_VIDEO_KEPT_INDEX: [("video_kept", "HASH", "S"),
                                            ("kept_since", "RANGE", "S")],
                SESSIONS_CROPS_KEPT_INDEX: [("crops_kept", "HASH", "S"),
                                            ("kept_since", "RANGE", "S")],
            },
        },
        settings.attendance_table: {
            "keys": [("session_id", "HASH", "S"), ("student_id", "RANGE", "S")],
            "indexes": {ATTENDANCE_BY_STUDENT_INDEX: [("student_id", "HASH", "S"),
                                                      ("session_id", "RANGE", "S")]},
        },
        settings.classes_table: {
            "keys": [("class_id", "HASH", "S")],
            "indexes": {CLASSES_BY_NAME_INDEX: [(LISTED, "HASH", "S"), ("name_key", "RANGE", "S")]},
        },
        settings.members_table: {
            "keys": [("class_id", "HASH", "S"), ("member", "RANGE", "S")],
            "indexes": {MEMBERS_BY_MEMBER_INDEX: [("member", "HASH", "S"),
                                                  ("class_id", "RANGE", "S")]},
        },
    }
