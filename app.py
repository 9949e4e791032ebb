"""Rollcall: routes and event handlers. Each is a few lines; the work is in chalicelib/."""
import os

from chalice import Chalice, CORSConfig, Rate, Response

from chalicelib import classes as class_rules
from chalicelib import evidence as evidence_rules
from chalicelib import http, inputs
from chalicelib import sessions as session_rules
from chalicelib.access import is_admin, require_admin
from chalicelib.auth import require_role
from chalicelib.conversion import parse_job_event
from chalicelib.errors import UnknownStudent
from chalicelib.services import Services
from chalicelib.settings import event_source_name

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


def query():
    return app.current_request.query_params or {}


def page_args():
    """``limit`` and ``cursor`` of a paged list."""
    return inputs.read_page(app.current_request)


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
    # The site shows dates and times in the deployment's zone.
    return dict(services().authenticator.login(**inputs.read_login(app.current_request)),
                time_zone=services().settings.time_zone)


@app.route("/auth/me", methods=["GET"])
def me():
    return current_user()


@app.route("/auth/password", methods=["POST"])
def change_own_password():
    return services().authenticator.change_password(
        services().accounts, current_user()["email"],
        **inputs.read_password_change(app.current_request))


# -- accounts (admins) ---------------------------------------------------------------
@app.route("/users", methods=["GET"])
def list_users():
    require_role(current_user(), "admin")
    users, next_cursor = services().users.page(**page_args())
    return {"users": users, "next_cursor": next_cursor}


@app.route("/users", methods=["POST"])
def add_user():
    require_admin(current_user())
    fields = inputs.read_new_user(app.current_request)
    return Response(body=services().accounts.add(**fields), status_code=201)


@app.route("/users/{email}/reset", methods=["POST"])
def reset_user(email):
    require_admin(current_user())
    return services().accounts.reset(email)


@app.route("/users/{email}", methods=["PATCH"])
def change_user(email):
    user = current_user()
    require_admin(user)
    fields = inputs.read_user_change(app.current_request)
    return {"user": services().accounts.set_disabled(user["email"], email, **fields)}


# -- classes and rosters -------------------------------------------------------------
@app.route("/classes", methods=["POST"])
def create_class():
    require_admin(current_user())
    fields = inputs.read_new_class(app.current_request)
    return Response(body={"class": services().classes.create(**fields)}, status_code=201)


@app.route("/classes", methods=["GET"])
def list_classes():
    user, archived = current_user(), query().get("archived") in ("1", "true")
    if is_admin(user):
        classes, next_cursor = services().classes.page_all(archived=archived, **page_args())
    else:
        classes, next_cursor = services().classes.page_of_teacher(
            user["email"], archived=archived, **page_args())
    return {"classes": classes, "next_cursor": next_cursor}


@app.route("/classes/{class_id}", methods=["GET"])
def get_class(class_id):
    return {"class": class_rules.public_class(
        services().access.class_for(current_user(), class_id))}


@app.route("/classes/{class_id}", methods=["PATCH"])
def change_class(class_id):
    user = current_user()
    services().access.class_for(user, class_id)
    changes = inputs.read_class_changes(app.current_request)
    if not is_admin(user) and set(changes) - class_rules.TEACHER_FIELDS:
        require_admin(user)
    return {"class": services().classes.change(class_id, changes)}


@app.route("/classes/{class_id}", methods=["DELETE"])
def delete_class(class_id):
    require_admin(current_user())
    services().classes.delete(class_id)
    return Response(body="", status_code=204)


@app.route("/classes/{class_id}/students", methods=["GET"])
def class_roster(class_id):
    services().access.class_for(current_user(), class_id)
    people, next_cursor = services().classes.roster_page(class_id, **page_args())
    return {"students": people, "next_cursor": next_cursor}


@app.route("/classes/{class_id}/students", methods=["POST"])
def enrol_student(class_id):
    user = current_user()
    class_item = services().access.class_for(user, class_id)
    student_id = inputs.read_enrolment(app.current_request)
    result, student = services().classes.enrol(class_item, student_id, user["email"])
    if student is None:
        raise UnknownStudent(f"There is no student with ID {student_id}.")
    return Response(body={"result": result, "student_id": student_id,
                          "full_name": student.get("full_name")},
                    status_code=201 if result == class_rules.ADDED else 200)


@app.route("/classes/{class_id}/students/{student_id}", methods=["DELETE"])
def unenrol_student(class_id, student_id):
    class_item = services().access.class_for(current_user(), class_id)
    services().classes.unenrol(class_item, student_id)
    return Response(body="", status_code=204)


@app.route("/classes/{class_id}/roster/import", methods=["POST"])
def import_roster(class_id):
    user = current_user()
    class_item = services().access.class_for(user, class_id)
    fields = inputs.read_import(app.current_request)
    return services().classes.import_ids(class_item, fields["text"], fields["column"],
                                         user["email"])


@app.route("/classes/{class_id}/attendance", methods=["GET"])
def class_register(class_id):
    class_item = services().access.class_for(current_user(), class_id)
    start, end = inputs.read_date_range(app.current_request)
    grid = services().reports.class_grid(class_id, start, end)
    return dict(grid, **{"class": class_rules.public_class(class_item)})


@app.route("/classes/{class_id}/attendance.csv", methods=["GET"])
def class_register_csv(class_id):
    class_item = services().access.class_for(current_user(), class_id)
    start, end = inputs.read_date_range(app.current_request)
    return Response(**services().reports.class_grid_csv(class_item, start, end))


# -- students ----------------------------------------------------------------------
@app.route("/uploads/photo", methods=["POST"])
def new_photo_upload():
    return services().students.new_upload(**inputs.read_photo_upload(app.current_request))


@app.route("/students", methods=["POST"])
def register_student():
    """Anyone signed in registers newcomers; ``class_id`` (one of the user's
    classes) enrols them at once, so a teacher sees whom they registered."""
    user, fields = current_user(), inputs.read_new_student(app.current_request)
    class_id = fields.pop("class_id")
    class_item = services().access.class_for(user, class_id) if class_id else None
    students = services().students
    item = students.register(**fields)
    if class_item is not None:
        services().classes.enrol(class_item, item["student_id"], user["email"])
    return Response(body={"student": students.view(item)}, status_code=201)


@app.route("/students", methods=["GET"])
def list_students():
    """People by name, paged; ``q`` an ID or name prefix; ``class_id`` one class's."""
    user, wanted = current_user(), inputs.read_people_query(app.current_request)
    text, class_id = wanted["text"], wanted["class_id"]
    within = None
    if class_id:
        services().access.class_for(user, class_id)
        within = services().classes.members.roster(class_id)
    elif not is_admin(user):
        within = [e for cid in services().access.class_ids(user)
                  for e in services().classes.members.roster(cid)]
    return services().students.page_views(query=text, within=within, **page_args())


@app.route("/students/{student_id}", methods=["GET"])
def get_student(student_id):
    services().access.check_student(current_user(), student_id)
    item = services().students.require(student_id)
    services().classes.repair_rosters(item)  # a rename cut short is finished here
    return {"student": services().students.view(item)}


@app.route("/students/{student_id}/classes", methods=["GET"])
def student_classes(student_id):
    """The classes a person is enrolled in (a teacher: those of theirs)."""
    user = current_user()
    mine = services().access.check_student(user, student_id)
    services().students.require(student_id)
    ids = services().classes.members.class_ids_of_student(student_id)
    if mine is not None:
        ids = [cid for cid in ids if cid in mine]
    items = services().classes.store.get_many(ids).values()
    return {"classes": sorted((class_rules.public_class(c) for c in items),
                              key=lambda c: c["name"].casefold())}


@app.route("/students/{student_id}/photos", methods=["POST"])
def add_student_photo(student_id):
    services().access.check_student(current_user(), student_id)
    students = services().students
    item = students.add_photo(student_id, **inputs.read_added_photo(app.current_request))
    return {"student": students.view(item)}


@app.route("/students/{student_id}", methods=["PATCH"])
def change_student(student_id):
    """Rename (or set the email); the person's class rosters show the new name."""
    services().access.check_student(current_user(), student_id)
    changes = inputs.read_student_changes(app.current_request)
    item = services().students.update(student_id, **changes)
    services().classes.catch_up_rosters(item)  # this rename's, or one cut short before
    return {"student": services().students.view(item)}


@app.route("/students/{student_id}/photos", methods=["GET"])
def list_student_photos(student_id):
    services().access.check_student(current_user(), student_id)
    return {"photos": services().students.photos(student_id)}


@app.route("/students/{student_id}/photos/{photo_id}", methods=["DELETE"])
def remove_student_photo(student_id, photo_id):
    services().access.check_student(current_user(), student_id)
    students = services().students
    return {"student": students.view(students.remove_photo(student_id, photo_id))}


@app.route("/students/{student_id}/main-photo", methods=["PUT"])
def replace_main_photo(student_id):
    """A new upload replaces the main photo, or one of the person's photos becomes it."""
    services().access.check_student(current_user(), student_id)
    students, wanted = services().students, inputs.read_main_photo(app.current_request)
    item = (students.make_main(student_id, wanted["photo_id"]) if "photo_id" in wanted
            else students.replace_main_photo(student_id, wanted["photo_key"]))
    return {"student": students.view(item)}


@app.route("/students/{student_id}", methods=["DELETE"])
def delete_student(student_id):
    require_role(current_user(), "admin")
    services().students.delete(student_id)
    services().evidence.forget_student(student_id)  # their faces cut from videos too
    return Response(body="", status_code=204)


# -- sessions, attendance, exports -------------------------------------------------
@app.route("/sessions", methods=["POST"])
def create_session():
    fields = inputs.read_new_session(app.current_request)
    return Response(body=services().sessions.create(user=current_user(), **fields),
                    status_code=201)


@app.route("/sessions", methods=["GET"])
def list_sessions():
    """Newest first, paged; ``class_id`` (or ``none``), ``from`` and ``to`` narrow it."""
    start, end = inputs.read_date_range(app.current_request)
    sessions, next_cursor = services().sessions.page(
        current_user(), class_id=query().get("class_id") or None, start=start, end=end,
        **page_args())
    return {"sessions": sessions, "next_cursor": next_cursor}


@app.route("/sessions/{session_id}", methods=["GET"])
def get_session(session_id):
    detail = services().sessions.detail(session_id, current_user())
    services().evidence.links(detail["session"], detail["attendance"])  # video crops
    services().students.add_photos(detail["attendance"])  # registered photos beside them
    return detail


@app.route("/sessions/{session_id}", methods=["PATCH"])
def change_session(session_id):
    changes = inputs.read_session_changes(app.current_request)
    return {"session": services().sessions.change(session_id, changes, current_user())}


@app.route("/sessions/{session_id}/attendance/{student_id}", methods=["PATCH"])
def correct_attendance(session_id, student_id):
    fields = inputs.read_correction(app.current_request)
    user = current_user()
    row = services().sessions.correct(session_id, student_id, user_email=user["email"],
                                      user=user, **fields)
    return {"row": row}


@app.route("/sessions/{session_id}/attendance/{student_id}/not-this-person", methods=["POST"])
def not_this_person(session_id, student_id):
    user = current_user()
    row = services().sessions.not_this_person(session_id, student_id, user_email=user["email"],
                                              user=user)
    return {"row": row}


@app.route("/sessions/{session_id}/unrecognised/{number}/register", methods=["POST"])
def register_stranger(session_id, number):
    """From the session's unrecognised people; a class session enrols them in its class."""
    user, fields = current_user(), inputs.read_stranger_registration(app.current_request)
    answer = services().sessions.register_stranger(
        session_id, inputs.read_position(number), user_email=user["email"], user=user, **fields)
    return Response(body=answer, status_code=201)


@app.route("/sessions/{session_id}/retry", methods=["POST"])
def retry_session(session_id):
    return Response(body={"session": services().sessions.retry(session_id,
                                                               user=current_user())},
                    status_code=202)


@app.route("/sessions/{session_id}/upload", methods=["POST"])
def new_session_upload(session_id):
    fields = inputs.read_new_upload(app.current_request)
    return services().sessions.new_upload(session_id, user=current_user(), **fields)


# Resumable uploads of the video: start, resume (the parts S3 has), sign parts, complete.
# Each first checks that the signed-in user may see the session (else 404).
def _session_for_upload(session_id):
    services().sessions.require(session_id, current_user())
    return services().multipart


@app.route("/sessions/{session_id}/multipart", methods=["POST"])
def start_multipart_upload(session_id):
    fields = inputs.read_multipart_start(app.current_request)
    upload = _session_for_upload(session_id).start(session_id, **fields)
    return Response(body=upload, status_code=201)


@app.route("/sessions/{session_id}/multipart", methods=["GET"])
def current_multipart_upload(session_id):
    return _session_for_upload(session_id).current(session_id)


@app.route("/sessions/{session_id}/multipart/parts", methods=["POST"])
def sign_upload_parts(session_id):
    fields = inputs.read_part_request(app.current_request)
    return {"urls": _session_for_upload(session_id).sign_parts(session_id, **fields)}


@app.route("/sessions/{session_id}/multipart/complete", methods=["POST"])
def complete_multipart_upload(session_id):
    fields = inputs.read_multipart_completion(app.current_request)
    return _session_for_upload(session_id).complete(session_id, **fields)


@app.route("/sessions/{session_id}/multipart", methods=["DELETE"])
def abort_multipart_upload(session_id):
    _session_for_upload(session_id).abort(session_id)
    return Response(body="", status_code=204)


@app.route("/sessions/{session_id}", methods=["DELETE"])
def delete_session(session_id):
    require_role(current_user(), "admin")
    services().sessions.delete(session_id)
    return Response(body="", status_code=204)


@app.route("/students/{student_id}/attendance", methods=["GET"])
def student_attendance(student_id):
    mine = services().access.check_student(current_user(), student_id)
    student = services().students.describe(student_id)
    return dict(student=student, **services().sessions.student_history(student_id, mine))


@app.route("/sessions/{session_id}/export.csv", methods=["GET"])
def export_session_csv(session_id):
    return Response(**services().reports.session_csv(session_id, current_user()))


@app.route("/attendance/export.csv", methods=["GET"])
def export_matrix_csv():
    start, end = inputs.read_date_range(app.current_request)
    return Response(**services().reports.matrix_csv(start, end, query().get("class_id") or None,
                                                    current_user()))


@app.route("/sessions/{session_id}/report", methods=["GET"])
def session_report(session_id):
    return Response(**services().reports.session_html(session_id, current_user()))


# -- events: S3 upload -> face search -> completion ---------------------------------
# The event sources are named when this module is imported, from the environment
# only (see chalicelib.settings.event_source_name: a missing name stops the import
# with a sentence saying which and how to set it).
@app.on_s3_event(bucket=event_source_name("VIDEOS_BUCKET"), events=["s3:ObjectCreated:*"],
                 prefix="videos/")
def on_video_uploaded(event):
    services().sessions.on_video_uploaded(
        event.bucket, event.key, budget_seconds=session_rules.polling_budget(event.context))


@app.on_sns_message(topic=event_source_name("COMPLETION_TOPIC"))
def on_face_search_complete(event):
    message = session_rules.parse_completion_message(event.message, services().logger)
    if message is not None:
        services().sessions.on_completion_message(message)


@app.on_cw_event({"source": ["aws.mediaconvert"],
                  "detail-type": ["MediaConvert Job State Change"],
                  "detail": {"userMetadata": {"stage": [event_source_name("ROLLCALL_STAGE")]}}})
def on_conversion_event(event):
    result = parse_job_event(event.detail, services().settings.videos_bucket)
    if result is not None:
        services().sessions.on_conversion_event(
            result, budget_seconds=session_rules.polling_budget(event.context))


@app.schedule(Rate(5, unit=Rate.MINUTES))
def check_processing_sessions(event):
    """The watchdog: a session stuck PROCESSING is checked against its job."""
    services().sessions.sweep()


# -- evidence crops (after completion) and retention ---------------------------------
@app.on_sqs_message(queue=event_source_name("EVIDENCE_QUEUE"), batch_size=1)
def cut_evidence(event):
    for record in event:
        request = evidence_rules.parse_request(record.body)
        if request is not None:
            services().evidence.cut(*request)


@app.schedule(Rate(6, unit=Rate.HOURS))
def sweep_retention(event):
    services().retention.sweep()
