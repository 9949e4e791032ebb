"""How a video that cannot be analysed ends: file problems vs retryable ones.

* a job that fails because the file cannot be read (Rekognition: "Unsupported
  codec/format.") ends FAILED with ``error_kind: file`` and says H.264;
* InvalidParameterException from StartFaceSearch is our request's fault: logged,
  an internal, retryable error (never "unsupported format" to a teacher).

moto + the fake face search, and once the built-in engine on a file that has an
MP4 header followed by random bytes.
"""
import dataclasses
import logging
import os
import time

import pytest

pytestmark = pytest.mark.engine

import app as app_module
from chalicelib.services import Services
from tests.fakes.drivers import create_session, s3_event, session_detail, upload_video
from tests.fakes.video_search import MP4_BYTES


def _failed(api, headers, services, data=MP4_BYTES):
    session = create_session(api, headers)["session"]
    upload_video(services, session, data=data)
    s3_event(api, services, session["video_key"])
    return session_detail(api, headers, session["session_id"])["session"]


@pytest.mark.parametrize("message", ["Unsupported codec/format.",
                                     "Unsupported codec/format: the video stream has no frames",
                                     "The video is truncated or corrupt: frames stop at 1.0 s"])
def test_an_unreadable_video_is_a_file_problem_that_names_h264(api, admin_headers, services,
                                                                video_search, message):
    video_search.fail_job = message
    video_search.pending_polls = 0
    session = _failed(api, admin_headers, services)
    assert session["status"] == "FAILED"
    assert session["error_kind"] == "file"
    assert "H.264" in session["error"] and "upload it again" in session["error"]


def test_a_job_that_failed_for_another_reason_stays_retryable(api, admin_headers, services,
                                                             video_search):
    video_search.fail_job = "The face engine stopped before this job finished"
    video_search.pending_polls = 0
    session = _failed(api, admin_headers, services)
    assert session["status"] == "FAILED" and session["error_kind"] == "retry"


def test_invalid_parameter_at_start_is_an_internal_retryable_error(api, admin_headers, services,
                                                                  video_search, caplog):
    video_search.fail["StartFaceSearch"] = "InvalidParameterException"
    with caplog.at_level(logging.ERROR):
        session = _failed(api, admin_headers, services)
    assert session["status"] == "FAILED" and session["error_kind"] == "retry"
    assert "format" not in session["error"].lower()
    assert "error on our side" in session["error"]
    assert any("could not start" in r.getMessage() and r.exc_info for r in caplog.records)
    retried = api.http.post(f"/sessions/{session['session_id']}/retry", headers=admin_headers)
    assert retried.status_code == 202


def test_an_mp4_header_and_random_bytes_end_as_a_file_problem_with_the_engine(
        api, admin_headers, services, face_rekognition):
    services.clients.register("rekognition", face_rekognition)
    face_rekognition.create_collection(CollectionId=services.settings.face_collection)
    polling = Services(settings=dataclasses.replace(services.settings, completion_topic=""),
                       clients=services.clients)
    app_module.reset_services(polling)
    header = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"  # an MP4's first box only
    session = _failed(api, admin_headers, polling, data=header + os.urandom(256 * 1024))
    deadline = time.monotonic() + 90
    while session["status"] == "PROCESSING" and time.monotonic() < deadline:
        time.sleep(0.5)  # each read looks at the job once (polling mode)
        session = session_detail(api, admin_headers, session["session_id"])["session"]
    assert session["status"] == "FAILED", session
    assert session["error_kind"] == "file"
    # Refused when its headers are read (damaged), or by the face search (H.264).
    assert "damaged" in session["error"] or "H.264" in session["error"], session["error"]
