"""A recording Rekognition cannot read (HEVC, VP9, MPEG-4 Part 2, AVI) is converted
first, through the API and the event handlers, with the built-in converter standing
in for MediaConvert and the fake face search for Rekognition."""
import dataclasses
import json
import threading
import time

import boto3
import pytest

import app as app_module
from chalicelib.conversion import Converter
from chalicelib.services import Services
from local.convert.server import ConverterServer
from tests.fakes.drivers import (create_session, s3_event, session_detail, sns_event,
                                 upload_video)
from tests.fakes.video_search import seen
from tests.support.clips import encode

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/rollcall-dev-mediaconvert"


@pytest.fixture
def converting(services, video_search, tmp_path):
    """The app with a converter: a MediaConvert client on the built-in endpoint."""
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="conversion-events")["QueueUrl"]
    server = ConverterServer(s3=services.clients.client("s3"), sqs=sqs,
                             data_dir=tmp_path / "convert", events_queue_url=queue)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = boto3.client("mediaconvert", region_name=REGION, endpoint_url=server.url)
    fresh = Services(settings=services.settings, clients=services.clients)
    fresh.__dict__["converter"] = Converter(client, role_arn=ROLE,
                                            bucket=services.settings.videos_bucket, stage="dev")
    app_module.reset_services(fresh)
    yield {"services": fresh, "sqs": sqs, "queue": queue, "server": server}
    server.shutdown()
    server.server_close()


def wait_for_event(sqs, queue, status, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=1).get("Messages", []):
            event = json.loads(message["Body"])
            if event["detail"]["status"] == status:
                return event
    raise AssertionError(f"no {status} conversion event in {timeout} s")


def deliver(api, event):
    return api.lambda_.invoke("on_conversion_event", event)


def hevc_session(api, headers, services, content_type="video/quicktime", **clip):
    session = create_session(api, headers, content_type=content_type)["session"]
    data = encode(**{"container": "mov", "codec": "libx265", "tag": "hvc1", "width": 640,
                     "height": 360, "fps": 24, "seconds": 2, **clip})
    upload_video(services, session, data=data, content_type=content_type)
    s3_event(api, services, session["video_key"])
    return session


def test_hevc_is_converted_then_searched_and_the_original_is_deleted(
        api, admin_headers, converting, video_search):
    services = converting["services"]
    video_search.persons = [*seen("S1", 0, [1000, 2000])]
    session = hevc_session(api, admin_headers, services)
    detail = session_detail(api, admin_headers, session["session_id"])["session"]
    assert detail["status"] == "CONVERTING"
    assert (detail["media"]["codec"], detail["media"]["codec_name"]) == ("hevc", "HEVC (H.265)")
    assert (detail["media"]["width"], detail["media"]["height"]) == (640, 360)
    assert video_search.started() == []  # nothing reaches Rekognition before conversion

    done = wait_for_event(converting["sqs"], converting["queue"], "COMPLETE")
    deliver(api, done)
    deliver(api, done)  # a repeated event starts one face search only
    started = video_search.started()
    assert len(started) == 1
    converted_key = started[0]["Video"]["S3Object"]["Name"]
    assert converted_key == f"converted/{session['session_id']}/video.mp4"
    s3 = services.clients.client("s3")
    bucket = services.settings.videos_bucket
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"videos/{session['session_id']}/")
    assert listed.get("KeyCount", 0) == 0  # one copy is kept: the converted one

    after = session_detail(api, admin_headers, session["session_id"])["session"]
    assert after["status"] == "PROCESSING" and after["analysis_key"] == converted_key
    job_id = after["job_id"]
    sns_event(api, video_search.message(job_id))
    final = session_detail(api, admin_headers, session["session_id"])["session"]
    assert final["status"] == "COMPLETED"


def test_a_lost_conversion_event_is_made_up_for_when_the_session_is_looked_at(
        api, admin_headers, converting, video_search):
    session = hevc_session(api, admin_headers, converting["services"])
    wait_for_event(converting["sqs"], converting["queue"], "COMPLETE")  # never delivered
    detail = session_detail(api, admin_headers, session["session_id"])["session"]
    assert detail["status"] == "PROCESSING"
    assert len(video_search.started()) == 1


@pytest.mark.parametrize("content_type,clip", [
    ("video/webm", {"container": "webm", "codec": "libvpx-vp9", "tag": None}),
    ("video/x-msvideo", {"container": "avi", "codec": "mpeg4", "tag": None}),
])
def test_vp9_webm_and_mpeg4_avi_are_converted_too(api, admin_headers, converting,
                                                   video_search, content_type, clip):
    session = hevc_session(api, admin_headers, converting["services"],
                           content_type=content_type, **clip)
    assert session_detail(api, admin_headers,
                          session["session_id"])["session"]["status"] == "CONVERTING"
    deliver(api, wait_for_event(converting["sqs"], converting["queue"], "COMPLETE"))
    assert len(video_search.started()) == 1


def test_h264_mp4_goes_straight_to_the_face_search(api, admin_headers, converting,
                                                    video_search):
    session = create_session(api, admin_headers)["session"]
    upload_video(converting["services"], session,
                 data=encode("mp4", "libx264", width=320, height=240, seconds=1))
    s3_event(api, converting["services"], session["video_key"])
    detail = session_detail(api, admin_headers, session["session_id"])["session"]
    assert detail["status"] in ("PROCESSING", "COMPLETED")
    assert detail["media"]["codec"] == "h264"
    assert video_search.started()[0]["Video"]["S3Object"]["Name"] == session["video_key"]


def test_without_a_converter_hevc_fails_as_a_file_problem_naming_h264(
        api, admin_headers, services, video_search):
    fresh = Services(settings=dataclasses.replace(services.settings, conversion_role=""),
                     clients=services.clients)
    app_module.reset_services(fresh)
    session = hevc_session(api, admin_headers, fresh)
    detail = session_detail(api, admin_headers, session["session_id"])["session"]
    assert (detail["status"], detail["error_kind"]) == ("FAILED", "file")
    assert "HEVC (H.265)" in detail["error"] and "H.264" in detail["error"]
    assert video_search.started() == []


@pytest.mark.parametrize("data,words", [
    (encode("mp4", None, audio_only=True), "no video track"),
    (encode("mp4", "libx264", seconds=3)[:3000], "cut off"),
])
def test_a_file_without_video_or_cut_off_is_refused_as_a_file_problem(
        api, admin_headers, services, video_search, data, words):
    session = create_session(api, admin_headers)["session"]
    upload_video(services, session, data=data)
    s3_event(api, services, session["video_key"])
    detail = session_detail(api, admin_headers, session["session_id"])["session"]
    assert (detail["status"], detail["error_kind"]) == ("FAILED", "file")
    assert words in detail["error"]


def test_a_failed_conversion_is_a_file_problem_and_a_late_success_changes_nothing(
        api, admin_headers, converting, video_search):
    services = converting["services"]
    session = hevc_session(api, admin_headers, services)
    stored = services.session_store.get(session["session_id"])
    error = {"version": "0", "id": "e1", "detail-type": "MediaConvert Job State Change",
             "source": "aws.mediaconvert", "account": "123456789012",
             "time": "2026-11-30T00:00:00Z", "region": REGION, "resources": [],
             "detail": {"status": "ERROR", "jobId": stored["conversion_job_id"],
                        "errorCode": 1010, "errorMessage": "Unable to decode the input",
                        "userMetadata": {"session_id": session["session_id"],
                                         "attempt": "0", "stage": "dev"}}}
    deliver(api, error)
    detail = session_detail(api, admin_headers, session["session_id"])["session"]
    assert (detail["status"], detail["error_kind"]) == ("FAILED", "file")
    assert "could not be converted to H.264 (Unable to decode the input)" in detail["error"]
    deliver(api, wait_for_event(converting["sqs"], converting["queue"], "COMPLETE"))
    assert session_detail(api, admin_headers,
                          session["session_id"])["session"]["status"] == "FAILED"
    assert video_search.started() == []


def test_the_watchdog_finishes_a_conversion_whose_event_was_lost(
        api, admin_headers, converting, video_search):
    services = converting["services"]
    session = hevc_session(api, admin_headers, services)
    wait_for_event(converting["sqs"], converting["queue"], "COMPLETE")  # never delivered
    assert services.session_store.get(session["session_id"])["status"] == "CONVERTING"
    assert services.sessions.sweep() == {"PROCESSING": 1}
    assert len(video_search.started()) == 1
