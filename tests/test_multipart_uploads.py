"""Resumable video uploads through the API (chalice.test.Client, moto's S3):
start, sign part URLs, send parts to them, list what S3 has, complete, abort;
refused unless the session awaits its upload; part numbers and sizes bounded.
Also renaming a session (PATCH /sessions/{id})."""
import hashlib
import json

import pytest
import requests

from chalicelib import multipart

MIB = 1024 * 1024


def post(api, path, headers, body):
    return api.http.post(path, headers=headers, body=json.dumps(body))


def new_session(api, headers, **fields):
    body = {"title": "Biology", "date": "2026-03-02", "content_type": "video/mp4", **fields}
    response = post(api, "/sessions", headers, body)
    assert response.status_code == 201, response.body
    return response.json_body["session"]


def start(api, headers, session_id, size):
    return post(api, f"/sessions/{session_id}/multipart", headers, {"size": size})


def sign(api, headers, session_id, upload_id, numbers):
    return post(api, f"/sessions/{session_id}/multipart/parts", headers,
                {"upload_id": upload_id, "part_numbers": numbers})


def put_part(url, data):
    """PUT a part to its presigned URL as the browser does; its ETag."""
    response = requests.put(url, data=data, timeout=30)
    assert response.status_code == 200, response.text
    return response.headers["ETag"]


def video_bytes(size):
    """``size`` bytes that start like an MP4 (ftyp box), the rest varied."""
    head = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    body = hashlib.sha256(b"seed").digest() * (size // 32 + 1)
    return (head + body)[:size]


def test_part_sizes_stay_within_8_and_64_mib():
    assert multipart.part_size_for(1) == 8 * MIB
    assert multipart.part_size_for(4 * 1024 ** 3) == 8 * MIB  # 512 parts
    big = multipart.part_size_for(200 * 1024 ** 3)
    assert 8 * MIB < big <= 64 * MIB and big % MIB == 0
    assert multipart.part_count(200 * 1024 ** 3, big) <= multipart.MAX_PARTS
    assert multipart.part_size_for(700 * 1024 ** 3) is None
    assert multipart.expected_part_size(3, 20 * MIB, 8 * MIB) == 4 * MIB


def test_a_video_goes_up_in_parts_resumes_from_what_s3_has_and_completes(
        api, admin_headers, services):
    session = new_session(api, admin_headers)
    sid = session["session_id"]
    data = video_bytes(20 * MIB + 123)  # three parts: 8 + 8 + 4 MiB and a bit
    started = start(api, admin_headers, sid, len(data))
    assert started.status_code == 201, started.body
    upload = started.json_body
    assert (upload["part_size"], upload["part_count"], upload["parts"]) == (8 * MIB, 3, [])
    upload_id = upload["upload_id"]

    urls = sign(api, admin_headers, sid, upload_id, [1, 2, 3]).json_body["urls"]
    assert set(urls) == {"1", "2", "3"}
    etags = {1: put_part(urls["1"], data[:8 * MIB]),
             3: put_part(urls["3"], data[16 * MIB:])}

    # The page is reloaded: it asks what S3 has and sends only the rest.
    current = api.http.get(f"/sessions/{sid}/multipart", headers=admin_headers)
    assert current.status_code == 200
    assert current.json_body["upload_id"] == upload_id
    assert [(p["part_number"], p["size"]) for p in current.json_body["parts"]] == [
        (1, 8 * MIB), (3, len(data) - 16 * MIB)]

    early = post(api, f"/sessions/{sid}/multipart/complete", admin_headers,
                 {"upload_id": upload_id, "parts": []})
    assert early.status_code == 409
    assert early.json_body["error"]["code"] == "parts_missing"
    assert early.json_body["error"]["details"]["missing"] == [2]

    again = sign(api, admin_headers, sid, upload_id, [2]).json_body["urls"]
    etags[2] = put_part(again["2"], data[8 * MIB:16 * MIB])
    done = post(api, f"/sessions/{sid}/multipart/complete", admin_headers,
                {"upload_id": upload_id,
                 "parts": [{"part_number": n, "etag": e} for n, e in etags.items()]})
    assert done.status_code == 200, done.body
    assert done.json_body == {"key": session["video_key"], "size": len(data)}
    s3 = services.clients.client("s3")
    stored = s3.get_object(Bucket=services.settings.videos_bucket, Key=session["video_key"])
    assert stored["Body"].read() == data
    assert stored["ContentType"] == "video/mp4"
    # Nothing unfinished is left: the session forgot it and S3 has no such upload.
    assert api.http.get(f"/sessions/{sid}/multipart",
                        headers=admin_headers).status_code == 404
    assert s3.list_multipart_uploads(Bucket=services.settings.videos_bucket).get(
        "Uploads", []) == []
    # The stored video goes on as any upload: the S3 event checks and starts it.
    services.sessions.on_video_uploaded(services.settings.videos_bucket,
                                        session["video_key"], budget_seconds=0)
    after = api.http.get(f"/sessions/{sid}", headers=admin_headers).json_body["session"]
    assert after["status"] != "AWAITING_UPLOAD"


def test_a_part_that_is_not_the_one_sent_is_refused_at_completion(api, admin_headers):
    sid = new_session(api, admin_headers)["session_id"]
    data = video_bytes(5000)
    upload_id = start(api, admin_headers, sid, len(data)).json_body["upload_id"]
    url = sign(api, admin_headers, sid, upload_id, [1]).json_body["urls"]["1"]
    put_part(url, data)
    wrong = post(api, f"/sessions/{sid}/multipart/complete", admin_headers,
                 {"upload_id": upload_id, "parts": [{"part_number": 1, "etag": '"abc"'}]})
    assert wrong.status_code == 409 and wrong.json_body["error"]["code"] == "part_mismatch"
    # A part of the wrong size (a different file, or a truncated PUT).
    put_part(url, data[:-1])
    short = post(api, f"/sessions/{sid}/multipart/complete", admin_headers,
                 {"upload_id": upload_id, "parts": []})
    assert short.status_code == 409 and short.json_body["error"]["code"] == "part_mismatch"


def test_a_session_not_awaiting_its_upload_gets_no_upload_nor_part_urls(
        api, admin_headers, services):
    sid = new_session(api, admin_headers)["session_id"]
    upload_id = start(api, admin_headers, sid, 1000).json_body["upload_id"]
    services.sessions.store._update(sid, {"status": "PROCESSING"},
                                    __import__("boto3").dynamodb.conditions.Attr(
                                        "session_id").exists())
    for response in (start(api, admin_headers, sid, 1000),
                     sign(api, admin_headers, sid, upload_id, [1]),
                     api.http.get(f"/sessions/{sid}/multipart", headers=admin_headers),
                     post(api, f"/sessions/{sid}/multipart/complete", admin_headers,
                          {"upload_id": upload_id})):
        assert response.status_code == 409, response.body
        assert response.json_body["error"]["code"] == "upload_not_allowed"
        assert "processing" in response.json_body["error"]["message"]
    missing = start(api, admin_headers, "0" * 32, 1000)
    assert missing.status_code == 404
    assert start(api, admin_headers, "not-a-session-id", 1000).status_code == 404


def test_starting_again_aborts_the_earlier_upload(api, admin_headers, services):
    sid = new_session(api, admin_headers)["session_id"]
    first = start(api, admin_headers, sid, 1000).json_body["upload_id"]
    second = start(api, admin_headers, sid, 2000).json_body["upload_id"]
    assert first != second
    s3 = services.clients.client("s3")
    live = [u["UploadId"] for u in s3.list_multipart_uploads(
        Bucket=services.settings.videos_bucket).get("Uploads", [])]
    assert live == [second]
    stale = sign(api, admin_headers, sid, first, [1])
    assert stale.status_code == 409 and stale.json_body["error"]["code"] == "upload_replaced"
    # Cancelling: the upload goes, and so does the session's record of it.
    assert api.http.delete(f"/sessions/{sid}/multipart",
                           headers=admin_headers).status_code == 204
    assert s3.list_multipart_uploads(Bucket=services.settings.videos_bucket).get(
        "Uploads", []) == []
    assert api.http.get(f"/sessions/{sid}/multipart",
                        headers=admin_headers).status_code == 404


@pytest.mark.parametrize("body, field", [
    ({}, "size"), ({"size": 0}, "size"), ({"size": -5}, "size"), ({"size": "9"}, "size"),
    ({"size": True}, "size"), ({"size": 1.5}, "size"),
])
def test_bad_sizes_get_a_400(api, admin_headers, body, field):
    sid = new_session(api, admin_headers)["session_id"]
    response = post(api, f"/sessions/{sid}/multipart", admin_headers, body)
    assert response.status_code == 400, body
    assert response.json_body["error"]["details"]["field"] == field


def test_a_video_over_the_limit_is_refused_before_any_byte(api, admin_headers, services):
    sid = new_session(api, admin_headers)["session_id"]
    response = start(api, admin_headers, sid, services.settings.max_video_bytes + 1)
    assert response.status_code == 413
    assert "limit" in response.json_body["error"]["message"]
    s3 = services.clients.client("s3")
    assert s3.list_multipart_uploads(Bucket=services.settings.videos_bucket).get(
        "Uploads", []) == []


def test_part_numbers_are_bounded_by_the_upload_and_the_request(api, admin_headers):
    sid = new_session(api, admin_headers)["session_id"]
    upload_id = start(api, admin_headers, sid, 20 * MIB).json_body["upload_id"]  # 3 parts
    for numbers in ([0], [4], [10_001], ["1"], [1, 1], [], list(range(1, 52)), "1", [True]):
        response = sign(api, admin_headers, sid, upload_id, numbers)
        assert response.status_code == 400, numbers
        assert response.json_body["error"]["details"]["field"] == "part_numbers"
    no_id = post(api, f"/sessions/{sid}/multipart/parts", admin_headers, {"part_numbers": [1]})
    assert no_id.status_code == 400
    assert no_id.json_body["error"]["details"]["field"] == "upload_id"
    assert sign(api, admin_headers, sid, upload_id, [1, 2, 3]).status_code == 200


def test_uploads_need_a_signed_in_user(api):
    assert api.http.post(f"/sessions/{'0' * 32}/multipart",
                         body=json.dumps({"size": 5})).status_code == 401


# -- renaming ---------------------------------------------------------------------
def test_a_session_can_be_renamed_and_redated_whatever_its_status(api, admin_headers):
    session = new_session(api, admin_headers, course="BIO-1")
    sid = session["session_id"]
    response = api.http.patch(f"/sessions/{sid}", headers=admin_headers,
                              body=json.dumps({"title": " Biology, week 4 ", "date": "2026-03-09"}))
    assert response.status_code == 200, response.body
    renamed = response.json_body["session"]
    assert (renamed["title"], renamed["date"], renamed["course"]) == (
        "Biology, week 4", "2026-03-09", "BIO-1")
    assert renamed["status"] == session["status"]
    assert renamed["video_key"] == session["video_key"]
    cleared = api.http.patch(f"/sessions/{sid}", headers=admin_headers,
                             body=json.dumps({"course": ""})).json_body["session"]
    assert cleared["course"] is None and cleared["title"] == "Biology, week 4"
    listed = api.http.get("/sessions", headers=admin_headers).json_body["sessions"]
    assert [s["title"] for s in listed] == ["Biology, week 4"]


@pytest.mark.parametrize("body, field", [
    ({"title": ""}, "title"), ({"title": "x" * 201}, "title"), ({"date": "2026-02-30"}, "date"),
    ({"date": None}, "date"), ({"status": "COMPLETED"}, "status"),
    ({"video_key": "videos/x"}, "video_key"),
])
def test_bad_changes_get_a_400_naming_the_field(api, admin_headers, body, field):
    sid = new_session(api, admin_headers)["session_id"]
    response = api.http.patch(f"/sessions/{sid}", headers=admin_headers, body=json.dumps(body))
    assert response.status_code == 400, body
    assert response.json_body["error"]["details"]["field"] == field


def test_renaming_needs_a_change_and_a_session(api, admin_headers):
    sid = new_session(api, admin_headers)["session_id"]
    empty = api.http.patch(f"/sessions/{sid}", headers=admin_headers, body="{}")
    assert empty.status_code == 400
    gone = api.http.patch(f"/sessions/{'0' * 32}", headers=admin_headers,
                          body=json.dumps({"title": "x"}))
    assert gone.status_code == 404
