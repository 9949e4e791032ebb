"""The numpy ResNet gives dlib's own descriptors, and refuses weights it cannot run."""
import cv2
import numpy as np
import pytest

from local.engine import face_engine, resnet


@pytest.fixture(scope="module")
def dlib_recognizer():
    import dlib
    import face_recognition_models as weights
    return dlib.face_recognition_model_v1(weights.face_recognition_model_location())


@pytest.fixture(scope="module")
def shared_chips(faces_dir_module):
    """Aligned chips of real photos: big faces, and the enlarged path of small ones."""
    chips = []
    for path in sorted((faces_dir_module / "people").glob("*/*.jpg"))[::4]:
        rgb = face_engine.decode_image(path.read_bytes())
        for face in face_engine.find_faces(rgb)[:1]:
            chips.append(face.chip)
            l, t, r, b = face.box
            scale = 28.0 / max(r - l, 1.0)          # the face at 28 px, as in a lecture hall
            small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            chips.append(face_engine.chip_of(small, (l * scale, t * scale, r * scale, b * scale)))
    if len(chips) < 8:
        pytest.skip("too few faces found in the shared photos")
    return chips


def test_descriptors_equal_dlibs_on_real_faces(dlib_recognizer, shared_chips):
    ours = resnet.network().descriptors(np.stack(shared_chips))
    theirs = np.array([np.asarray(dlib_recognizer.compute_face_descriptor(c), np.float32)
                       for c in shared_chips])
    assert ours.shape == theirs.shape == (len(shared_chips), 128)
    # float32 sums in another order: equal to ~1e-6, far below the 0.03 gap
    # between the calibration's same-person and different-people distances.
    assert np.abs(ours - theirs).max() < 1e-4
    assert np.linalg.norm(ours - theirs, axis=1).max() < 1e-4


def test_a_batch_gives_each_chip_what_it_gets_alone(shared_chips):
    net = resnet.network()
    batch = net.descriptors(np.stack(shared_chips[:5]))
    for chip, row in zip(shared_chips[:5], batch):
        assert np.abs(net.descriptors(chip)[0] - row).max() < 1e-5


def test_the_engine_describes_with_it(shared_chips):
    chip = shared_chips[0]
    assert np.array_equal(face_engine.describe_chip(chip), resnet.network().descriptors(chip)[0])
    assert len(face_engine.describe_chips([])) == 0
    pair = face_engine.describe_chips(shared_chips[:2])
    assert len(pair) == 2 and pair[0].shape == (128,)


def test_wrong_chip_size_is_refused():
    with pytest.raises(ValueError, match="150x150"):
        resnet.network().descriptors(np.zeros((120, 120, 3), np.uint8))


def _weights():
    import face_recognition_models as weights
    with open(weights.face_recognition_model_location(), "rb") as f:
        return f.read()


def test_other_weight_files_are_refused():
    import face_recognition_models as weights
    with open(weights.pose_predictor_five_point_model_location(), "rb") as f:
        with pytest.raises(resnet.ModelFormatError):
            resnet.FaceResNet(f.read())
    data = _weights()
    one_conv_fewer = data.replace(b"\x01\x05con_4", b"\x01\x05xxx_4", 1)
    with pytest.raises(resnet.ModelFormatError, match="number of layers"):
        resnet.FaceResNet(one_conv_fewer)


def test_blas_runs_one_thread_in_the_engine():
    import threadpoolctl
    resnet.network()
    blas = [lib for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    assert blas and all(lib["num_threads"] == 1 for lib in blas)


def test_many_chips_are_described_a_few_at_a_time(shared_chips, monkeypatch):
    net = resnet.network()
    sizes = []
    real = net.descriptors
    monkeypatch.setattr(net, "descriptors", lambda batch: sizes.append(len(batch)) or real(batch))
    monkeypatch.setattr(face_engine, "DESCRIBE_BATCH", 3)
    chips = shared_chips[:7]
    together = face_engine.describe_chips(chips)
    assert sizes == [3, 3, 1]
    alone = [real(c)[0] for c in chips]
    assert all(np.abs(a - b).max() < 1e-5 for a, b in zip(together, alone))
