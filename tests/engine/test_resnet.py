"""The numpy ResNet gives dlib's own descriptors, and refuses weights it cannot run."""
import os

import cv2
import numpy as np
import pytest

from local.engine import face_engine, resnet
from tests.support.face_set import PROJECT_DIR as ROOT


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
        for face in face_engine.find_faces(rgb, describe=False)[:1]:
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
    assert np.abs(ours - theirs).max() < 1e-5
    assert np.linalg.norm(ours - theirs, axis=1).max() < 1e-5


def test_a_batch_gives_each_chip_what_it_gets_alone(shared_chips):
    net = resnet.network()
    batch = net.descriptors(np.stack(shared_chips[:5]))
    for chip, row in zip(shared_chips[:5], batch):
        assert np.abs(net.descriptors(chip)[0] - row).max() < 1e-5


def test_the_engine_describes_with_it(shared_chips):
    assert len(face_engine.describe_chips([])) == 0
    many = face_engine.describe_chips(shared_chips[:face_engine.DESCRIBE_BATCH + 2])
    alone = resnet.network().descriptors(np.stack(shared_chips[:face_engine.DESCRIBE_BATCH + 2]))
    assert len(many) == min(len(shared_chips), face_engine.DESCRIBE_BATCH + 2)
    assert np.abs(np.asarray(many) - alone).max() < 1e-5     # across the passes too


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


def test_the_engines_processes_run_blas_on_one_thread():
    """The endpoint and its video workers limit numpy's BLAS where they start
    (their parallelism is their own); other processes keep theirs."""
    import subprocess
    import sys
    probe = """
import os, signal
import numpy, threadpoolctl
from local.engine import rekognition_server, video

def blas_threads():
    return sorted({lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                   if lib["user_api"] == "blas"})

class Endpoint:
    # what the endpoint's main sees when its server starts, then a stop
    url, seen = "http://stub", []

    def __init__(self, *args, **kwargs):
        self.api = self

    def start(self):
        Endpoint.seen.append(blas_threads())
        os.kill(os.getpid(), signal.SIGTERM)
        return self

    def stop(self):
        pass

    def wait_for_jobs(self, timeout):
        return True

if __name__ == "__main__":
    before = blas_threads()
    worker = video.worker_pool(1).submit(eval, "__import__('threadpoolctl').threadpool_info()")
    worker = sorted({lib["num_threads"] for lib in worker.result(timeout=120)
                     if lib["user_api"] == "blas"})
    video.shutdown_pool()
    rekognition_server.RekognitionServer = Endpoint
    rekognition_server.main([])
    print("threads", before, worker, Endpoint.seen[0])
"""
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT),
                                                          OPENBLAS_NUM_THREADS="2"))
    assert out.returncode == 0, out.stderr
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("threads ")][-1]
    assert line == "threads [2] [1] [1]", out.stdout


def test_a_damaged_weights_file_is_named_and_refused(tmp_path):
    data = _weights()
    for name, broken in [("cut", data[:len(data) // 2]),
                         ("cut-in-a-header", data[:data.find(b"con_4") + 9]),
                         ("nan", _with_nan(data))]:
        path = tmp_path / f"{name}.dat"
        path.write_bytes(broken)
        with pytest.raises(resnet.ModelFormatError, match=str(path)):
            resnet.FaceResNet.from_file(path)


def _with_nan(data):
    """The weights with one value of the first convolution's filters made NaN."""
    at = data.find(b"\x01\x05con_4") + 7
    reader = resnet._Reader(data, at)
    assert reader.int() == 2                    # the params tensor's version
    for _ in range(4):
        reader.int()
    return data[:reader.pos] + np.float32("nan").tobytes() + data[reader.pos + 4:]
