"""Small faces (24-44 px) in lecture-hall video: found, matched, and calibrated.

Videos are made by tests/support/lecture_hall.py from the real photos in
../shared/faces: H.264 at CRF 28, the room's light swinging. The photo-pair
calibration (every different-person pair of the 70 photos under similarity
80) is tests/test_face_engine.py::test_similarity_calibration_on_every_pair_of_photos;
here the same rule is checked on faces as small video crops.
"""
import numpy as np
import pytest

from local.engine import face_engine, persons, video
from tests.support import lecture_hall

pytestmark = pytest.mark.engine


def photo(faces_dir, identity, n):
    return faces_dir / "people" / identity / f"{n}.jpg"


def registered(faces_dir, names):
    faces = []
    for who in names:
        d = face_engine.find_faces(face_engine.decode_image(
            photo(faces_dir, who, 1).read_bytes()))[0].descriptor
        faces.append({"FaceId": f"id-{who}", "ExternalImageId": who,
                      "Descriptor": [float(v) for v in d]})
    return faces, np.asarray([f["Descriptor"] for f in faces], np.float32)


@pytest.mark.slow
def test_a_person_at_26_px_is_found_and_matched(faces_dir, tmp_path):
    """john_simm at 26 px (registered from another photo), a stranger at 26 px
    beside him, john_savage at 60 px: simm and savage are matched, the stranger
    is nobody, and each is one person."""
    seats = [
        {"identity": "john_simm", "image": photo(faces_dir, "john_simm", 3), "face_px": 26,
         "x": 300, "y": 120, "spans": [(0.0, 8.0)]},
        {"identity": "joe_biden", "image": photo(faces_dir, "joe_biden", 2), "face_px": 26,
         "x": 700, "y": 120, "spans": [(0.0, 8.0)]},
        {"identity": "john_savage", "image": photo(faces_dir, "john_savage", 2), "face_px": 60,
         "x": 500, "y": 500, "spans": [(0.0, 8.0)]},
    ]
    path = tmp_path / "hall.mp4"
    truth = lecture_hall.write(path, seats, size=(1280, 720), duration_s=8.0)
    faces, matrix = registered(faces_dir, ["john_simm", "john_savage", "barack_obama"])
    info, tracks = video.analyse(path, video.VideoSettings(workers=0), reference=matrix)
    result = persons.entries(tracks, info, faces, matrix, 80.0)
    entries = [persons.person_entry(e, result["Matches"]) for e in result["Entries"]]
    seen = {}
    for e in entries:
        b = e["Person"]["BoundingBox"]
        box = (b["Left"] * 1280, b["Top"] * 720, (b["Left"] + b["Width"]) * 1280,
               (b["Top"] + b["Height"]) * 720)
        seat = lecture_hall.seat_at(truth, e["Timestamp"], box)
        assert seat is not None, e
        names = {m["Face"]["ExternalImageId"] for m in e["FaceMatches"]}
        seen.setdefault(seat, []).append((e["Person"]["Index"], names, box))
    assert sorted(seen) == [0, 1, 2], "every seat found"
    simm, stranger, savage = seen[0], seen[1], seen[2]
    assert all(names == {"john_simm"} for _, names, _ in simm)
    assert all(names == set() for _, names, _ in stranger)
    assert all(names == {"john_savage"} for _, names, _ in savage)
    assert len(simm) >= 12                     # seen through the video, not once
    assert max(b[2] - b[0] for _, _, b in simm) < 40     # and it really was small
    for sightings in (simm, stranger, savage):
        assert len({index for index, _, _ in sightings}) == 1


def _closed_track(faces_dir, who, reference_of, face_px):
    """A track of two chips of ``who``'s photo 1 at ``face_px``, closed by a
    tracker holding ``reference_of``'s descriptor: the track's dict."""
    from local.engine import tracking
    rgb = face_engine.decode_image(photo(faces_dir, who, 1).read_bytes())
    face = face_engine.find_faces(rgb)[0]
    chip = face_engine.face_chip(rgb, face.shape)
    _, reference = registered(faces_dir, [reference_of])
    tracker = tracking.SegmentTracker(video.VideoSettings(workers=0), reference=reference)
    track = tracking.Track(face_engine.Detection(face.box, face.score), 0, 0)
    track.see(0, 0, face.box)
    track.chips = [(2.0, 0, chip, float(face_px)), (1.0, 1, chip, float(face_px))]
    tracker._close(track)
    return tracker.done[0]


@pytest.mark.parametrize("face_px", [30, 80])
def test_a_clear_match_is_described_once_with_one_size_per_descriptor(faces_dir, face_px):
    """Its own registration photo is a clear match, small or not: one
    descriptor, and one face size for it (persons.py pairs sizes with
    descriptors across a person's tracks)."""
    done = _closed_track(faces_dir, "john_simm", "john_simm", face_px)
    assert len(done["descriptors"]) == 1
    assert done["sizes"] == [float(face_px)]


def test_a_small_face_that_is_no_clear_match_gets_every_chip_described(faces_dir):
    """Against someone else a small face is never judged on one descriptor."""
    done = _closed_track(faces_dir, "john_simm", "barack_obama", 30)
    assert len(done["descriptors"]) == 2 and done["sizes"] == [30.0, 30.0]


SIZES = (24, 30, 36, 44)


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    """Every identity as 24-44 px video crops: (identity, face px, descriptors)."""
    from tests.support.face_set import shared_faces_dir
    faces_dir = shared_faces_dir()
    if not (faces_dir / "people").is_dir():
        pytest.skip("face photos not found")
    identities = sorted(p.name for p in (faces_dir / "people").iterdir())
    seats = []
    for c, who in enumerate(identities):
        n = 2 if photo(faces_dir, who, 2).exists() else 1
        for r, px in enumerate(SIZES):
            seats.append({"identity": who, "image": photo(faces_dir, who, n), "face_px": px,
                          "x": 60 + c * 112, "y": 60 + r * 150, "spans": [(0.0, 2.0)]})
    path = tmp_path_factory.mktemp("crops") / "crops.mp4"
    truth = lecture_hall.write(path, seats, size=(1280, 640), duration_s=2.0)
    found = {}
    for k, _, rgb in video.sampled_frames(path, 2.0):
        gray = face_engine.to_gray(rgb)
        for app in truth:
            dets = face_engine.detect_in_region(gray, app["face_box"])
            if dets:
                det = max(dets, key=lambda d: d.score)
                found.setdefault(app["seat"], []).append(
                    (min(det.width, det.height),
                     face_engine.describe_chips([face_engine.chip_of(rgb, det.box)])[0]))
    return faces_dir, seats, found


@pytest.mark.slow
def test_calibration_on_small_video_crops(crops):
    """No small crop of one person reaches similarity 80 with any photo of another."""
    faces_dir, seats, found = crops
    refs = []
    for path in sorted((faces_dir / "people").glob("*/*.jpg")):
        face = face_engine.find_faces(face_engine.decode_image(path.read_bytes()),
                                      max_pixels=500_000)[0]
        refs.append((path.parent.name, f"{path.parent.name}/{path.name}", face.descriptor))
    matrix = np.stack([r[2] for r in refs])
    assert len(found) >= 0.9 * len(seats), "small faces were not found"
    worst, own = None, []
    for n, rows in found.items():
        who = seats[n]["identity"]
        dist = persons.person_distances([d for _, d in rows], [s for s, _ in rows], matrix)
        sims = face_engine.similarity(dist)
        for (ref_who, ref_name, _), sim in zip(refs, sims):
            if ref_who != who and (worst is None or sim > worst[0]):
                worst = (float(sim), who, seats[n]["face_px"], ref_name)
        own.append(max(s for (r, _, _), s in zip(refs, sims) if r == who) >= 80)
    print(f"\nhighest different-person similarity {worst[0]:.1f} ({worst[1]} at "
          f"{worst[2]} px vs {worst[3]}); {sum(own)}/{len(own)} crops reach a photo "
          f"of their own person")
    assert worst[0] < 80, worst
    assert sum(own) >= 0.8 * len(own)          # and they are still recognised
