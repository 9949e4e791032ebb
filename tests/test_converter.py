"""Converting recordings Rekognition cannot read: the app's MediaConvert calls
(checked by botocore's model through the built-in converter) and the converter itself.

The built-in endpoint runs in this test's moto world, converts with PyAV, and
announces each job's end as MediaConvert's EventBridge event on an SQS queue.
"""
import json
import threading
import time

import boto3
import pytest

from chalicelib import conversion
from chalicelib.media import VideoInfo, probe
from local.convert.server import ConverterServer
from tests.support.clips import encode

REGION = "us-east-1"
BUCKET = "videos-test"
ROLE = "arn:aws:iam::123456789012:role/rollcall-mediaconvert"




@pytest.fixture
def world(aws, tmp_path):
    s3 = boto3.client("s3", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    queue = sqs.create_queue(QueueName="events")["QueueUrl"]
    server = ConverterServer(s3=s3, sqs=sqs, data_dir=tmp_path / "convert",
                             events_queue_url=queue)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = boto3.client("mediaconvert", region_name=REGION, endpoint_url=server.url)
    yield {"s3": s3, "sqs": sqs, "queue": queue, "server": server, "client": client,
           "converter": conversion.Converter(client, role_arn=ROLE, bucket=BUCKET),
           "data_dir": tmp_path / "convert"}
    server.shutdown()
    server.server_close()


def put_clip(s3, key, data):
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    return probe(lambda offset, length: data[offset:offset + length], len(data))


def wait_finished(converter, job_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = converter.read(job_id)
        if result.finished:
            return result
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def events(sqs, queue):
    found = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages")
        if not messages:
            return found
        found += [json.loads(m["Body"]) for m in messages]


def stored_info(s3, key):
    data = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return probe(lambda offset, length: data[offset:offset + length], len(data))


@pytest.mark.parametrize("container,codec,tag", [
    ("mov", "libx265", "hvc1"), ("mov", "libx265", "hev1"), ("webm", "libvpx-vp9", None),
    ("avi", "mpeg4", None)])
def test_a_recording_rekognition_cannot_read_becomes_h264_mp4(world, container, codec, tag):
    info = put_clip(world["s3"], "videos/s1/video.src",
                    encode(container, codec, tag=tag, width=640, height=360, fps=24,
                           seconds=2))
    assert not info.face_search_ready()
    job_id = world["converter"].start(source_key="videos/s1/video.src", session_id="s1",
                                      attempt=0, info=info)
    result = wait_finished(world["converter"], job_id)
    assert (result.status, result.output_key) == ("COMPLETE", "converted/s1/video.mp4")
    assert (result.session_id, result.attempt) == ("s1", 0)
    out = stored_info(world["s3"], result.output_key)
    assert out.face_search_ready() and (out.width, out.height) == (640, 360)
    assert out.fps == pytest.approx(24, rel=0.05)
    assert out.duration_s == pytest.approx(2.0, abs=0.2)
    finished = [e for e in events(world["sqs"], world["queue"])
                if e["detail"]["status"] == "COMPLETE"]
    assert len(finished) == 1
    parsed = conversion.parse_job_event(finished[0]["detail"], BUCKET)
    assert (parsed.job_id, parsed.output_key, parsed.session_id) == (
        job_id, "converted/s1/video.mp4", "s1")
    assert finished[0]["source"] == "aws.mediaconvert"


def test_output_is_at_most_1080p_and_15_to_30_fps(world):
    info = put_clip(world["s3"], "videos/s2/video.mov",
                    encode("mov", "libx265", tag="hvc1", width=2560, height=1440, fps=10,
                           seconds=1))
    job_id = world["converter"].start(source_key="videos/s2/video.mov", session_id="s2",
                                      attempt=0, info=info)
    out = stored_info(world["s3"], wait_finished(world["converter"], job_id).output_key)
    assert (out.width, out.height) == (1920, 1080)
    assert out.fps == pytest.approx(15, rel=0.05)


def test_the_same_request_token_gives_the_same_job(world):
    info = put_clip(world["s3"], "videos/s3/video.mov",
                    encode("mov", "libx265", tag="hvc1", seconds=1))
    first = world["converter"].start(source_key="videos/s3/video.mov", session_id="s3",
                                     attempt=0, info=info)
    again = world["converter"].start(source_key="videos/s3/video.mov", session_id="s3",
                                     attempt=0, info=info)
    retry = world["converter"].start(source_key="videos/s3/video.mov", session_id="s3",
                                     attempt=1, info=info)
    assert first == again != retry


def test_an_unreadable_source_ends_the_job_in_error(world):
    world["s3"].put_object(Bucket=BUCKET, Key="videos/s4/video.mov", Body=b"\0\0\0\x08ftypqt  junk")
    job_id = world["converter"].start(
        source_key="videos/s4/video.mov", session_id="s4", attempt=0,
        info=VideoInfo("mov", "hevc", 640, 360, 25.0, 10.0))
    result = wait_finished(world["converter"], job_id)
    assert result.status == "ERROR" and "decode" in result.message
    assert [e["detail"]["status"] for e in events(world["sqs"], world["queue"])][-1] == "ERROR"


def test_requests_are_checked_against_the_service_model(world):
    client = world["client"]
    with pytest.raises(client.exceptions.NotFoundException):
        client.get_job(Id="no-such-job")
    with pytest.raises(client.exceptions.BadRequestException):
        client.create_job(Role=ROLE, Settings={"Inputs": []})


def test_an_unfinished_job_runs_again_after_a_restart(world, tmp_path):
    info = put_clip(world["s3"], "videos/s5/video.mov",
                    encode("mov", "libx265", tag="hvc1", seconds=1))
    # A job file left PROGRESSING by a converter that was stopped mid-way.
    job = {"Id": "1-abc", "Arn": "arn:aws:mediaconvert:us-east-1:1:jobs/1-abc",
           "Status": "PROGRESSING", "CreatedAt": 1, "Role": ROLE,
           "Settings": world["converter"].job_settings("videos/s5/video.mov", "s5", info),
           "UserMetadata": {"session_id": "s5", "attempt": "0"}, "Queue": "q",
           "ClientRequestToken": "s5-0", "Timing": {"SubmitTime": 1},
           "_source": [BUCKET, "videos/s5/video.mov"],
           "_destination": [BUCKET, "converted/s5/video.mp4"]}
    jobs = tmp_path / "restart" / "jobs"
    jobs.mkdir(parents=True)
    (jobs / "1-abc.json").write_text(json.dumps(job))
    server = ConverterServer(s3=world["s3"], sqs=world["sqs"], data_dir=tmp_path / "restart")
    try:
        deadline = time.monotonic() + 60
        while server.api.get_job("1-abc")["Job"]["Status"] != "COMPLETE":
            assert time.monotonic() < deadline, "the interrupted job was not run again"
            time.sleep(0.1)
    finally:
        server.server_close()
    assert stored_info(world["s3"], "converted/s5/video.mp4").codec == "h264"


def test_job_settings_follow_the_source_within_bounds():
    assert conversion.output_size(3840, 2160) == (1920, 1080)
    assert conversion.output_size(1080, 1920) == (1080, 1920)      # portrait kept
    assert conversion.output_size(2160, 3840) == (1080, 1920)
    assert conversion.output_size(1281, 721) == (1280, 720)        # even sides
    assert [conversion.output_fps(f) for f in (None, 8, 24, 29.97, 60)] == [15, 15, 24, 30, 30]
    settings = conversion.Converter(None, role_arn=ROLE, bucket=BUCKET).job_settings(
        "videos/x/video.mov", "x", VideoInfo("mov", "hevc", 1920, 1080, 59.94, 60.0))
    h264 = settings["OutputGroups"][0]["Outputs"][0]["VideoDescription"]["CodecSettings"]
    assert h264["Codec"] == "H_264" and h264["H264Settings"]["FramerateNumerator"] == 30
    assert settings["Inputs"][0]["FileInput"] == f"s3://{BUCKET}/videos/x/video.mov"
