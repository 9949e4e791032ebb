"""Every DynamoDB table and index, by name: the one place Lambda code and
provisioning read them from (provisioning creates exactly these)."""

#: Attendance rows by person, for one person's history.
ATTENDANCE_BY_STUDENT_INDEX = "by_student"


def table_specs(settings):
    """Key schema of every table, by table name."""
    return {
        settings.users_table: {"keys": [("email", "HASH", "S")]},
        settings.students_table: {"keys": [("student_id", "HASH", "S")]},
        settings.sessions_table: {"keys": [("session_id", "HASH", "S")]},
        settings.attendance_table: {
            "keys": [("session_id", "HASH", "S"), ("student_id", "RANGE", "S")],
            "indexes": {ATTENDANCE_BY_STUDENT_INDEX: [("student_id", "HASH", "S"),
                                                      ("session_id", "RANGE", "S")]},
        },
    }
