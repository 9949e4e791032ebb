"""Face-search jobs in parallel: a bounded number run at once, the others wait in
order and say where they stand in GetFaceSearch's StatusMessage."""
import threading
import time

import boto3
import pytest

from local.engine import rekognition_api, video
from local.engine.rekognition_server import RekognitionServer
from tests.support.video_maker import make_video

REGION = "us-east-1"
BUCKET = "jobs-test"


@pytest.fixture
def clip(tmp_path, faces_dir):
    path = tmp_path / "clip.mp4"
    make_video(path, [dict(image=faces_dir / "people" / "rose_leslie" / "1.jpg", start_s=0,
                           end_s=2, x=100, y=60, height=80)],
               size=(480, 270), duration_s=2.0, fps=10)
    return path


@pytest.fixture
def endpoint(aws, clip):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    for n in range(4):
        s3.upload_file(str(clip), BUCKET, f"v{n}.mp4")
    server = RekognitionServer(s3_client=s3, sns_client=boto3.client("sns", region_name=REGION),
                               region=REGION, max_jobs=2).start()
    yield server
    server.stop()


def test_two_jobs_run_at_once_and_the_others_know_their_place(endpoint, monkeypatch):
    rk = boto3.client("rekognition", region_name=REGION, endpoint_url=endpoint.url)
    rk.create_collection(CollectionId="c")
    gate, entered, real = threading.Event(), [], video.analyse

    def held(path, settings=None, **kwargs):            # the real analysis, once let go
        entered.append(path)
        assert gate.wait(60)
        return real(path, settings, **kwargs)
    monkeypatch.setattr(rekognition_api.video, "analyse", held)
    jobs = [rk.start_face_search(CollectionId="c", Video={
        "S3Object": {"Bucket": BUCKET, "Name": f"v{n}.mp4"}})["JobId"] for n in range(4)]
    deadline = time.monotonic() + 30
    while len(entered) < 2:
        assert time.monotonic() < deadline, "two jobs should start at once"
        time.sleep(0.05)
    time.sleep(0.3)
    assert len(entered) == 2                            # bounded: the third waits
    status = [rk.get_face_search(JobId=j) for j in jobs]
    assert [s["JobStatus"] for s in status] == ["IN_PROGRESS"] * 4
    assert status[0]["StatusMessage"].startswith("Analysing")
    assert status[1]["StatusMessage"].startswith("Analysing")
    assert status[2]["StatusMessage"].startswith("Queued: position 1 of 2")
    assert status[3]["StatusMessage"].startswith("Queued: position 2 of 2")
    gate.set()
    deadline = time.monotonic() + 120
    for job_id in jobs:
        while (done := rk.get_face_search(JobId=job_id))["JobStatus"] == "IN_PROGRESS":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert done["JobStatus"] == "SUCCEEDED", done
        assert "StatusMessage" not in done
        assert len({p["Person"]["Index"] for p in done["Persons"]}) == 1


def test_analyses_at_once_share_the_workers(clip):
    """Two analyses in threads, one pool: each gets half the workers, both finish."""
    settings = video.VideoSettings(workers=2, min_segment_s=0.5, max_segment_s=0.5)
    assert len(video.plan_segments(video.probe(clip), settings)) == 4
    shares, results = [], []

    def run():
        def progress(done, total):
            shares.append(video._share(2))
        results.append(video.analyse(clip, settings, progress=progress))
    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 2
    assert all(len(tracks) == 1 for _, tracks in results)
    assert 1 in shares                     # while both ran, each kept one segment in flight
    assert video._share(2) == 2            # alone, a video uses both workers


def test_max_segment_cuts_long_videos():
    info = video.VideoInfo(duration_s=600.0, fps=25.0, width=1280, height=720, codec="h264",
                           format="mp4", color_range="LIMITED")
    segments = video.plan_segments(info, video.VideoSettings(workers=2))
    assert len(segments) == 5 and segments[0][0] == 0 and segments[-1][1] == 1201
    assert len(video.plan_segments(info, video.VideoSettings(workers=2,
                                                             max_segment_s=600))) == 2
