"""The labelled face set (``../shared/faces`` beside the project) and videos made from it."""
import os
import pathlib

from tests.support.video_maker import make_video

PROJECT_DIR = pathlib.Path(__file__).resolve().parents[2]

#: The bucket the face-engine tests keep their photos and videos in (moto's S3).
ENGINE_BUCKET = "face-engine-test"

#: Who appears in the classroom video: (identity, photo n used in the video,
#: start_s, end_s, x, y, face height px).
CLASS_SCHEDULE = [
    ("john_simm", 3, 0.3, 4.7, 120, 420, 50),
    ("barack_obama", 2, 1.2, 10.2, 520, 140, 130),
    ("kit_harington", 2, 2.1, 6.8, 900, 380, 80),        # not registered
    ("rose_leslie", 2, 3.3, 11.8, 1000, 120, 70),
    ("john_simm", 3, 8.3, 11.6, 120, 420, 50),           # comes back: a second appearance
]


def shared_faces_dir():
    """``ROLLCALL_FACES_DIR`` if set, else the ``shared/faces`` folder beside the repo."""
    return pathlib.Path(os.environ.get("ROLLCALL_FACES_DIR",
                                       PROJECT_DIR.parent / "shared" / "faces"))


def photo(faces_dir, identity, n=1):
    """The path of photo ``n`` of ``identity``."""
    return faces_dir / "people" / identity / f"{n}.jpg"


def make_classroom_video(path, faces_dir):
    """12.5 s at 1280x720 of the people of :data:`CLASS_SCHEDULE` coming and going."""
    make_video(path, [dict(image=photo(faces_dir, who, n), start_s=a, end_s=b, x=x, y=y,
                           height=h, drift=3)
                      for who, n, a, b, x, y, h in CLASS_SCHEDULE],
               size=(1280, 720), fps=10, duration_s=12.5)
    return path


def make_short_video(path, faces_dir):
    """4 s at 640x360: Barack Obama throughout, Rose Leslie from 1 s."""
    make_video(path, [dict(image=photo(faces_dir, "barack_obama", 2), start_s=0, end_s=4,
                           x=60, y=40, height=90),
                      dict(image=photo(faces_dir, "rose_leslie", 2), start_s=1, end_s=4,
                           x=360, y=60, height=80)],
               size=(640, 360), fps=10, duration_s=4)
    return path
