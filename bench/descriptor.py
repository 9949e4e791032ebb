"""Benchmark: the face descriptor, numpy's ResNet against dlib's own network.

Aligns the faces of the photos in ../shared/faces, then describes every chip
with local.engine.resnet (one at a time, and 8 to a pass) and with dlib's
face_recognition_model_v1 (the dlib-bin wheel, no BLAS), on one thread each,
in this one run; prints milliseconds per face, the ratio, and the largest
difference between the two descriptors of a chip (they should be equal to
float32 rounding). Asserts nothing: it prints figures.
"""
import os
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from local.engine import face_engine, resnet  # noqa: E402
from tests.support.face_set import shared_faces_dir  # noqa: E402

FACES = shared_faces_dir()


def per_face(describe, chips, rounds):
    """Best of ``rounds`` passes over ``chips``, in ms per chip."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        describe(chips)
        best = min(best, time.perf_counter() - start)
    return 1000.0 * best / len(chips)


def main():
    photos = sorted((FACES / "people").glob("*/*.jpg"))
    if not photos:
        print(f"face photos not found in {FACES}; set ROLLCALL_FACES_DIR")
        return 1
    chips = [face.chip for path in photos
             for face in face_engine.find_faces(face_engine.decode_image(path.read_bytes()),
                                                describe=False)[:1]]
    import dlib
    import face_recognition_models as weights
    theirs = dlib.face_recognition_model_v1(weights.face_recognition_model_location())
    resnet.one_blas_thread()        # as in the engine's processes (and dlib's own: one)
    net = resnet.network()
    rounds = 3

    def one_by_one(batch):
        return [net.descriptors(c)[0] for c in batch]

    def eight_a_pass(batch):
        return face_engine.describe_chips(list(batch))

    def dlib_net(batch):
        return [np.asarray(theirs.compute_face_descriptor(c), np.float32) for c in batch]

    ours_1 = per_face(one_by_one, chips, rounds)
    ours_8 = per_face(eight_a_pass, chips, rounds)
    dlibs = per_face(dlib_net, chips, rounds)
    diff = max(float(np.abs(a - b).max())
               for a, b in zip(one_by_one(chips), dlib_net(chips)))
    print(f"{len(chips)} aligned faces from {len(photos)} photos; best of {rounds}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"numpy ResNet, one chip a pass: {ours_1:.1f} ms a face")
    print(f"numpy ResNet, {face_engine.DESCRIBE_BATCH} chips a pass: {ours_8:.1f} ms a face")
    print(f"dlib's network (dlib-bin): {dlibs:.1f} ms a face "
          f"({dlibs / ours_1:.1f}x the numpy one, {dlibs / ours_8:.1f}x batched)")
    print(f"largest difference between the two descriptors of a chip: {diff:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
