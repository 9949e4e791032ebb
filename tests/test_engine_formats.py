"""The built-in engine reads what Rekognition Video reads, H.264 in MP4 or MOV, and
fails a face-search job on anything else with Rekognition's "Unsupported codec/format."."""
import time

import boto3
import pytest

from tests.support.clips import encode

REGION = "us-east-1"


def run_job(face_rekognition, key, data):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="clips")
    s3.put_object(Bucket="clips", Key=key, Body=data)
    face_rekognition.create_collection(CollectionId="formats")
    job = face_rekognition.start_face_search(
        Video={"S3Object": {"Bucket": "clips", "Name": key}}, CollectionId="formats")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        answer = face_rekognition.get_face_search(JobId=job["JobId"])
        if answer["JobStatus"] != "IN_PROGRESS":
            return answer
        time.sleep(0.2)
    raise AssertionError("the job did not end")


@pytest.mark.parametrize("key,clip", [
    ("hevc.mov", dict(container="mov", codec="libx265", tag="hvc1")),
    ("vp9.webm", dict(container="webm", codec="libvpx-vp9")),
    ("h264.avi", dict(container="avi", codec="libx264")),
])
def test_what_rekognition_cannot_read_fails_the_job_as_it_would(face_rekognition, key, clip):
    answer = run_job(face_rekognition, key, encode(width=320, height=240, seconds=1, **clip))
    assert answer["JobStatus"] == "FAILED"
    assert answer["StatusMessage"].startswith("Unsupported codec/format.")


def test_h264_mp4_is_analysed(face_rekognition):
    answer = run_job(face_rekognition, "h264.mp4",
                     encode("mp4", "libx264", width=320, height=240, seconds=1))
    assert answer["JobStatus"] == "SUCCEEDED"
    assert answer["VideoMetadata"]["Codec"] == "h264"
