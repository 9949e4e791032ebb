"""One Person.Index per person for the whole video (local/engine/persons.py).

People look down, leave and come back, and the video is cut between worker
processes; each of those gives a new track, but a person keeps one index.
Unrecognised people are then counted as people, not as appearances."""
import boto3
import numpy as np
import pytest

from chalicelib import attendance
from local.engine import face_engine, persons, video
from tests.support.video_maker import make_video

REGION = "us-east-1"
BUCKET = "persons-test"


def photo(faces_dir, identity, n):
    return faces_dir / "people" / identity / f"{n}.jpg"


# (identity, photo, start_s, end_s, x, y, face px): obama looks down (gone
# 4.5-7.5 s, across the worker cut at 8 s) and comes back to his seat; simm
# leaves and comes back to another seat; biden is there once, throughout.
SCHEDULE = [
    ("barack_obama", 2, 0.0, 4.5, 80, 60, 70),
    ("barack_obama", 2, 7.5, 16.0, 80, 60, 70),
    ("john_simm", 3, 0.5, 5.0, 620, 260, 56),
    ("john_simm", 3, 10.0, 16.0, 380, 300, 56),
    ("joe_biden", 2, 0.0, 16.0, 560, 40, 64),
]


@pytest.fixture(scope="module")
def hall_video(tmp_path_factory):
    from conftest import shared_faces_dir
    faces = shared_faces_dir()
    if not (faces / "people").is_dir():
        pytest.skip(f"face photos not found in {faces}")
    path = tmp_path_factory.mktemp("persons") / "hall.mp4"
    make_video(path, [dict(image=photo(faces, who, n), label=who, start_s=a, end_s=b,
                           x=x, y=y, height=h, drift=3)
                      for who, n, a, b, x, y, h in SCHEDULE],
               size=(960, 540), fps=10, duration_s=16.0, crf=26)
    return path


def _identity(track, refs):
    best, name = np.inf, None
    for who, ref in refs.items():
        d = min(float(np.linalg.norm(np.asarray(x) - ref)) for x in track["descriptors"])
        if d < best:
            best, name = d, who
    return name


def test_one_person_per_face_across_look_down_cut_and_seat_change(faces_dir, hall_video):
    settings = video.VideoSettings(workers=2, min_segment_s=6.0)
    assert len(video.plan_segments(video.probe(hall_video), settings)) == 2
    _, tracks = video.analyse(hall_video, settings)
    refs = {who: face_engine.find_faces(face_engine.decode_image(
        photo(faces_dir, who, 1).read_bytes()))[0].descriptor
        for who in ("barack_obama", "john_simm", "joe_biden")}
    # several appearances -> several tracks...
    assert len(tracks) >= 5, [(t["first_ms"], t["last_ms"]) for t in tracks]
    # ... grouped by face alone (no collection): one person each
    grouped = persons.group(tracks)
    names = [{_identity(t, refs) for t in p} for p in grouped]
    print("\npersons:", [(sorted(n), [(t["first_ms"], t["last_ms"]) for t in p])
                         for n, p in zip(names, grouped)])
    assert all(len(n) == 1 for n in names), names
    assert sorted(n.pop() for n in names) == ["barack_obama", "joe_biden", "john_simm"]


def test_tracks_at_the_same_moment_are_never_one_person():
    """Even identical descriptors: one face cannot be in two places at once."""
    d = [0.1] * 128
    a = {"first_ms": 0, "last_ms": 4000, "entries": [(0, (0, 0, 50, 50), 99.0)],
         "descriptors": [d]}
    b = {"first_ms": 2000, "last_ms": 6000, "entries": [(2000, (300, 0, 350, 50), 99.0)],
         "descriptors": [d]}
    c = {"first_ms": 7000, "last_ms": 9000, "entries": [(7000, (300, 0, 350, 50), 99.0)],
         "descriptors": [d]}
    grouped = persons.group([a, b, c])
    assert len(grouped) == 2
    assert [len(p) for p in grouped] == [2, 1] or [len(p) for p in grouped] == [1, 2]


def test_strangers_are_not_merged():
    """Mean descriptors of different people stay apart (photos of the shared set)."""
    from conftest import shared_faces_dir
    faces = shared_faces_dir()
    if not (faces / "people").is_dir():
        pytest.skip("face photos not found")
    tracks = []
    for i, who in enumerate(["john_salley", "john_savage", "john_schneider", "john_shimkus",
                             "john_simm", "joe_biden"]):
        d = face_engine.find_faces(face_engine.decode_image(
            photo(faces, who, 2).read_bytes()))[0].descriptor
        tracks.append({"first_ms": i * 1000, "last_ms": i * 1000 + 500,
                       "entries": [(i * 1000, (0, 0, 60, 60), 99.0)],     # same seat
                       "descriptors": [d.tolist()], "label": who})
    grouped = persons.group(tracks)
    assert len(grouped) == 6


@pytest.fixture
def s3(aws):
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=BUCKET)
    return client


def test_endpoint_gives_one_index_per_person_and_unrecognised_count_people(
        face_rekognition, faces_dir, s3, hall_video):
    rk = face_rekognition
    rk.create_collection(CollectionId="hall")
    rk.index_faces(CollectionId="hall", ExternalImageId="barack_obama", MaxFaces=1,
                   Image={"Bytes": photo(faces_dir, "barack_obama", 1).read_bytes()})
    s3.upload_file(str(hall_video), BUCKET, "hall.mp4")
    job = rk.start_face_search(CollectionId="hall",
                               Video={"S3Object": {"Bucket": BUCKET, "Name": "hall.mp4"}})
    import time
    deadline = time.monotonic() + 180
    while True:
        done = rk.get_face_search(JobId=job["JobId"])
        if done["JobStatus"] != "IN_PROGRESS":
            break
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert done["JobStatus"] == "SUCCEEDED", done
    entries = done["Persons"]
    indexes = {p["Person"]["Index"] for p in entries}
    assert len(indexes) == 3, indexes
    obama = {p["Person"]["Index"] for p in entries if p["FaceMatches"]}
    assert len(obama) == 1
    stamps = sorted(p["Timestamp"] for p in entries if p["Person"]["Index"] in obama)
    assert stamps[0] < 1000 and stamps[-1] > 15000     # before and after looking down
    decision = attendance.decide(entries, {"barack_obama"}, 80.0)
    assert set(decision.evidence) == {"barack_obama"}
    assert decision.unrecognised == 2                  # simm (twice) and biden: 2 people
