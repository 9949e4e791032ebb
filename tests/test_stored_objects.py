"""What is stored and served: declared vs real types, and videos after analysis.

* an upload stored with a type other than its bytes' is refused, and every
  photo link fixes the answer's Content-Type (never what was stored);
* an upload that arrives for a session no longer awaiting one is ignored and
  logged; the analysed object's ETag stays on the session.
"""
import json
import logging
import urllib.parse

from chalicelib.uploads import Uploads
from tests.fakes.drivers import add_students, run_session, s3_event
from tests.fakes.video_search import MP4_BYTES, seen

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + b"\x00" * 200


def test_a_photo_stored_as_html_is_refused(api, admin_headers, services):
    answer = api.http.post("/uploads/photo", headers=admin_headers,
                           body=json.dumps({"content_type": "image/jpeg"})).json_body
    # moto (like any client that ignores the POST policy) lets the type through.
    services.clients.client("s3").put_object(
        Bucket=services.settings.photos_bucket, Key=answer["photo_key"],
        Body=JPEG + b"<script>alert(1)</script>", ContentType="text/html")
    refused = api.http.post("/students", headers=admin_headers, body=json.dumps({
        "student_id": "S-1", "full_name": "Ada", "photo_key": answer["photo_key"]}))
    assert refused.status_code == 422, refused.body
    assert refused.json_body["error"]["code"] == "bad_photo"
    assert "text/html" in refused.json_body["error"]["message"]


def test_an_mp4_stored_as_quicktime_is_the_same_kind(services):
    uploads = Uploads(services.clients.client("s3"), services.settings.videos_bucket)
    services.clients.client("s3").put_object(Bucket=uploads.bucket, Key="videos/x/v.mov",
                                             Body=MP4_BYTES, ContentType="video/quicktime")
    assert uploads.inspect("videos/x/v.mov", {"video/mp4": "mp4", "video/quicktime": "mov"},
                           10 ** 6).content_type == "video/mp4"


def test_photo_links_fix_the_type_and_show_the_file_inline(services):
    uploads = Uploads(services.clients.client("s3"), services.settings.photos_bucket)
    for key, kind in [("photos/students/a.jpg", "image/jpeg"),
                      ("photos/students/b.png", "image/png"),
                      ("photos/students/c.html", "application/octet-stream")]:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(uploads.presigned_get(key)).query)
        assert query["response-content-type"] == [kind]
        assert query["response-content-disposition"][0].startswith("inline; filename=")
    stored = services.clients.client("s3")
    stored.put_object(Bucket=uploads.bucket, Key="photos/uploads/u.jpg", Body=JPEG,
                      ContentType="text/html")
    uploads.copy("photos/uploads/u.jpg", "photos/students/u.jpg", content_type="image/jpeg")
    assert stored.head_object(Bucket=uploads.bucket,
                              Key="photos/students/u.jpg")["ContentType"] == "image/jpeg"


def test_an_upload_after_completion_is_ignored_and_logged(api, admin_headers, services,
                                                          video_search, caplog):
    add_students(services, [("ada", "Ada")])
    detail = run_session(api, admin_headers, services, video_search,
                         seen("ada", 0, [0, 500, 1000]))
    session = detail["session"]
    assert session["status"] == "COMPLETED"
    table = services.clients.table(services.settings.sessions_table)
    analysed = table.get_item(Key={"session_id": session["session_id"]})["Item"]["video_etag"]
    assert analysed
    started = len(video_search.started())
    # The same upload form, used again an hour later with another file.
    services.clients.client("s3").put_object(
        Bucket=services.settings.videos_bucket, Key=session["video_key"],
        Body=MP4_BYTES + b"another recording", ContentType="video/mp4")
    with caplog.at_level(logging.WARNING):
        s3_event(api, services, session["video_key"])
    item = table.get_item(Key={"session_id": session["session_id"]})["Item"]
    assert item["status"] == "COMPLETED" and item["video_etag"] == analysed
    assert item["ignored_upload_etag"] not in ("", analysed)
    assert len(video_search.started()) == started
    assert any("not awaiting" in r.getMessage() for r in caplog.records)
