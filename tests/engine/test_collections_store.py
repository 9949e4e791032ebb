"""The face engine's collections on disk: an acknowledged write survives a power
cut (fsynced before its rename, the directory after), and a crash part way
through a write leaves the state before it readable."""
import json
import os
import stat

import pytest

from local.engine import collections_store
from local.engine.collections_store import CollectionStore, JobStore

pytestmark = pytest.mark.engine


def a_face(face_id, student_id="S-1"):
    return {"FaceId": face_id, "ExternalImageId": student_id, "Descriptor": [0.0] * 128}


@pytest.fixture
def disk_log(monkeypatch):
    """What reaches the disk, in order: ("fsync", "file" or "dir") and ("replace", name)."""
    log = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        log.append(("fsync", "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"))
        real_fsync(fd)

    def replace(src, dst):
        log.append(("replace", os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(collections_store.os, "fsync", fsync)
    monkeypatch.setattr(collections_store.os, "replace", replace)
    return log


def test_an_indexed_face_is_fsynced_before_the_rename_and_the_directory_after(
        tmp_path, disk_log):
    store = CollectionStore(tmp_path)
    store.create("class-1")
    disk_log.clear()
    store.add_faces("class-1", [a_face("f1")])
    assert disk_log == [("fsync", "file"), ("replace", "class-1.json"), ("fsync", "dir")]
    disk_log.clear()
    store.delete_faces("class-1", ["f1"])
    assert disk_log == [("fsync", "file"), ("replace", "class-1.json"), ("fsync", "dir")]
    disk_log.clear()
    store.delete("class-1")
    assert disk_log == [("fsync", "dir")]  # the file's removal is on disk too


def test_a_job_is_written_as_durably(tmp_path, disk_log):
    JobStore(tmp_path).put({"JobId": "j1", "JobStatus": "SUCCEEDED"})
    assert disk_log == [("fsync", "file"), ("replace", "j1.json"), ("fsync", "dir")]


def test_a_crash_before_the_rename_leaves_the_faces_before_it(tmp_path, monkeypatch):
    store = CollectionStore(tmp_path)
    store.create("class-1")
    store.add_faces("class-1", [a_face("f1")])

    def power_cut(src, dst):
        raise OSError("the power went")
    monkeypatch.setattr(collections_store.os, "replace", power_cut)
    with pytest.raises(OSError):
        store.add_faces("class-1", [a_face("f2")])   # never acknowledged
    monkeypatch.undo()

    restarted = CollectionStore(tmp_path)
    assert [f["FaceId"] for f in restarted.faces("class-1")] == ["f1"]
    assert sorted(p.name for p in (tmp_path / "collections").iterdir()) == ["class-1.json"]


def test_a_half_written_file_a_power_cut_left_is_ignored_and_removed(tmp_path):
    store = CollectionStore(tmp_path)
    store.create("class-1")
    store.add_faces("class-1", [a_face("f1")])
    folder = tmp_path / "collections"
    torn = folder / ".class-1.json.0123abcd.tmp"
    torn.write_text(json.dumps({"CollectionId": "class-1", "Faces": []})[:20])

    restarted = CollectionStore(tmp_path)
    assert [f["FaceId"] for f in restarted.faces("class-1")] == ["f1"]
    assert not torn.exists()


def a_result(n):
    return {"Matches": [[{"Similarity": 99.0, "Face": {"FaceId": "f-1"}}], []],
            "Entries": [[t * 200, t % 2, [0.1, 0.2, 0.05, 0.06], 99.9] for t in range(n)]}


def test_a_written_jobs_result_is_read_back_and_only_the_last_few_stay_in_memory(tmp_path):
    store = JobStore(tmp_path)
    for n in range(5):
        store.put({"JobId": f"job-{n}", "JobStatus": "SUCCEEDED", "Result": a_result(n + 1)})
    assert all("Result" not in store.get(f"job-{n}") for n in range(5))
    for n in range(5):
        assert store.result(f"job-{n}") == a_result(n + 1)
    assert len(store._results) == JobStore.RESULTS_KEPT
    assert JobStore(tmp_path).result("job-3") == a_result(4), "a restarted engine serves it"


def test_a_job_written_before_results_were_compact_is_still_served(tmp_path):
    box = {"Width": 0.05, "Height": 0.06, "Left": 0.1, "Top": 0.2}
    old = {"JobId": "old", "JobStatus": "SUCCEEDED", "Persons": [
        {"Timestamp": 400, "Person": {"Index": 1, "BoundingBox": box,
                                      "Face": {"BoundingBox": box, "Confidence": 98.5}},
         "FaceMatches": []},
        {"Timestamp": 0, "Person": {"Index": 0, "BoundingBox": box,
                                    "Face": {"BoundingBox": box, "Confidence": 99.5}},
         "FaceMatches": [{"Similarity": 99.0, "Face": {"FaceId": "f-1"}}]}]}
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "old.json").write_text(json.dumps(old))
    store = JobStore(tmp_path)
    assert "Persons" not in store.get("old")
    assert store.result("old") == {
        "Matches": [[{"Similarity": 99.0, "Face": {"FaceId": "f-1"}}], []],
        "Entries": [[0, 0, [0.1, 0.2, 0.05, 0.06], 99.5], [400, 1, [0.1, 0.2, 0.05, 0.06], 98.5]]}
