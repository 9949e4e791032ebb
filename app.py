"""Rollcall: routes and event handlers. Each is a few lines; the work is in chalicelib/."""
import os

from chalice import Chalice, CORSConfig, Rate, Response

from chalicelib import http, inputs
from chalicelib import sessions as session_rules
from chalicelib.auth import require_role
from chalicelib.services import Services

app = Chalice(app_name="rollcall")
# The site's origin only; Chalice also makes the OPTIONS preflight answers from this.
app.api.cors = CORSConfig(allow_origin=os.environ.get("SITE_ORIGIN", "http://127.0.0.1:8000"),
                          allow_headers=["Authorization", "Content-Type"], max_age=600)

_services = None


def services():
    """The lazily built object graph; :func:`reset_services` starts it anew."""
    global _services
    if _services is None:
        _services = Services()
    return _services


def reset_services(new=None):
    global _services
    _services = new


def current_user():
    return http.current_user(app.current_request)


@app.middleware("http")
def rollcall_http(request, get_response):
    return http.handle_request(
        request, get_response,
        authenticator=lambda: services().authenticator,
        site_origin=lambda: services().settings.site_origin,
        logger=services().logger)


# -- auth -------------------------------------------------------------------
@app.route("/health", methods=["GET"])
def health():
    return {"status": "ok"}


@app.route("/auth/login", methods=["POST"])
def login():
    return services().authenticator.login(**inputs.read_login(app.current_request))


@app.route("/auth/me", methods=["GET"])
def me():
    return current_user()


@app.route("/users", methods=["GET"])
def list_users():
    require_role(current_user(), "admin")
    return {"users": services().users.list()}


# -- students ----------------------------------------------------------------------
@app.route("/uploads/photo", methods=["POST"])
def new_photo_upload():
    return services().students.new_upload(**inputs.read_photo_upload(app.current_request))


@app.route("/students", methods=["POST"])
def register_student():
    students = services().students
    item = students.register(**inputs.read_new_student(app.current_request))
    return Response(body={"student": students.view(item)}, status_code=201)


@app.route("/students", methods=["GET"])
def list_students():
    return {"students": services().students.list_views()}


@app.route("/students/{student_id}", methods=["GET"])
def get_student(student_id):
    return {"student": services().students.describe(student_id)}


@app.route("/students/{student_id}/photos", methods=["POST"])
def add_student_photo(student_id):
    students = services().students
    item = students.add_photo(student_id, **inputs.read_added_photo(app.current_request))
    return {"student": students.view(item)}


@app.route("/students/{student_id}", methods=["DELETE"])
def delete_student(student_id):
    require_role(current_user(), "admin")
    services().students.delete(student_id)
    return Response(body="", status_code=204)


# -- sessions, attendance, exports -------------------------------------------------
@app.route("/sessions", methods=["POST"])
def create_session():
    fields = inputs.read_new_session(app.current_request)
    return Response(body=services().sessions.create(**fields), status_code=201)


@app.route("/sessions", methods=["GET"])
def list_sessions():
    return {"sessions": services().sessions.list()}


@app.route("/sessions/{session_id}", methods=["GET"])
def get_session(session_id):
    return services().sessions.detail(session_id)


@app.route("/sessions/{session_id}/attendance/{student_id}", methods=["PATCH"])
def correct_attendance(session_id, student_id):
    fields = inputs.read_correction(app.current_request)
    row = services().sessions.correct(session_id, student_id,
                                      user_email=current_user()["email"], **fields)
    return {"row": row}


@app.route("/sessions/{session_id}/retry", methods=["POST"])
def retry_session(session_id):
    return Response(body={"session": services().sessions.retry(session_id)}, status_code=202)


@app.route("/sessions/{session_id}/upload", methods=["POST"])
def new_session_upload(session_id):
    fields = inputs.read_new_upload(app.current_request)
    return services().sessions.new_upload(session_id, **fields)


@app.route("/sessions/{session_id}", methods=["DELETE"])
def delete_session(session_id):
    require_role(current_user(), "admin")
    services().sessions.delete(session_id)
    return Response(body="", status_code=204)


@app.route("/students/{student_id}/attendance", methods=["GET"])
def student_attendance(student_id):
    student = services().students.describe(student_id)
    return dict(student=student, **services().sessions.student_history(student_id))


@app.route("/sessions/{session_id}/export.csv", methods=["GET"])
def export_session_csv(session_id):
    return Response(**services().reports.session_csv(session_id))


@app.route("/attendance/export.csv", methods=["GET"])
def export_matrix_csv():
    start, end = inputs.read_date_range(app.current_request)
    return Response(**services().reports.matrix_csv(start, end))


@app.route("/sessions/{session_id}/report", methods=["GET"])
def session_report(session_id):
    return Response(**services().reports.session_html(session_id))


# -- events: S3 upload -> face search -> completion ---------------------------------
def _stage_setting(name):
    """A resource name at import time: the stage's env, else the dev stage's config.

    Lambda always has the env; only tests and ``chalice package`` read the
    config, through the operator module that Lambda's zip does not hold."""
    if os.environ.get(name):
        return os.environ[name]
    from ops.stage_config import stage_environment
    return stage_environment("dev").get(name, "")


@app.on_s3_event(bucket=_stage_setting("VIDEOS_BUCKET"), events=["s3:ObjectCreated:*"],
                 prefix="videos/")
def on_video_uploaded(event):
    services().sessions.on_video_uploaded(
        event.bucket, event.key, budget_seconds=session_rules.polling_budget(event.context))


@app.on_sns_message(topic=_stage_setting("COMPLETION_TOPIC"))
def on_face_search_complete(event):
    message = session_rules.parse_completion_message(event.message, services().logger)
    if message is not None:
        services().sessions.on_completion_message(message)


@app.schedule(Rate(5, unit=Rate.MINUTES))
def check_processing_sessions(event):
    """The watchdog: a session stuck PROCESSING is checked against its job."""
    services().sessions.sweep()
