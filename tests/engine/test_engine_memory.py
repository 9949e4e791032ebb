"""An hour-long video must not grow the face engine with the video's length.

Sightings are kept as rows of floats, read as the Python lists and tuples
they replace, at a fraction of the memory: a finished track's
(local.engine.tracking.Sightings) and a job's result
(local.engine.persons.EntryRows); described faces no later segment can be
handed are let go; a worker gives freed memory back after each segment."""
import json
import pathlib
import pickle
import random
import tracemalloc

import pytest

from local.engine.collections_store import JobStore
from local.engine.persons import EntryRows
from local.engine.tracking import Sightings
from local.engine import video
from local.engine.video import stitch, VideoSettings

ROOT = pathlib.Path(__file__).resolve().parents[2]

ENTRIES = [(0, (10.5, 20.0, 40.5, 50.0), 99.5), (500, (11.0, 20.5, 41.0, 50.5), 98.25),
           (1000, (12.0, 21.0, 42.0, 51.0), 97.0)]


def test_sightings_read_as_the_tuples_they_hold():
    s = Sightings(ENTRIES)
    assert len(s) == 3 and bool(s)
    assert list(s) == ENTRIES
    assert s[0] == ENTRIES[0] and s[-1] == ENTRIES[-1]
    assert s[1:] == ENTRIES[1:]
    assert s == ENTRIES
    t_ms, box, conf = s[-1]
    assert isinstance(t_ms, int) and box[2] == 42.0 and conf == 97.0
    assert not Sightings([])


def test_sightings_extend_and_survive_pickling():
    s = Sightings(ENTRIES[:1])
    s.extend(Sightings(ENTRIES[1:2]))
    s.extend(ENTRIES[2:])
    assert list(pickle.loads(pickle.dumps(s))) == ENTRIES


def _allocated(make):
    """Bytes still allocated by what ``make()`` answers (tracemalloc)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = make()
        return tracemalloc.get_traced_memory()[0] - before, kept
    finally:
        tracemalloc.stop()


def test_sightings_cost_a_fraction_of_tuples():
    many = [(i * 500, (100.0 + i % 7, 200.5, 130.0, 230.5), 99.0 - (i % 13) / 10)
            for i in range(20000)]
    as_tuples, _ = _allocated(lambda: pickle.loads(pickle.dumps(many)))
    as_rows, rows = _allocated(lambda: pickle.loads(pickle.dumps(Sightings(many))))
    assert list(rows) == many
    assert as_rows * 4 < as_tuples, (as_rows, as_tuples)


def test_stitching_joins_sightings_across_a_cut():
    settings = VideoSettings(workers=1)
    before = {"first_k": 0, "last_k": 9, "first_ms": 0, "last_ms": 4500,
              "entries": Sightings([(k * 500, (100.0, 100.0, 140.0, 140.0), 99.0)
                                    for k in range(10)]),
              "descriptors": [[0.0] * 128], "sizes": [40]}
    after = {"first_k": 10, "last_k": 14, "first_ms": 5000, "last_ms": 7000,
             "entries": Sightings([(k * 500, (101.0, 100.0, 141.0, 140.0), 98.0)
                                   for k in range(10, 15)]),
             "descriptors": [[0.1] * 128], "sizes": [40]}
    joined = stitch([[before], [after]], [(0, 10), (10, 15)], settings)
    assert len(joined) == 1
    assert [t for t, _, _ in joined[0]["entries"]] == [k * 500 for k in range(15)]
    assert joined[0]["last_ms"] == 7000 and len(joined[0]["descriptors"]) == 2


# -- a job's result: persons.EntryRows ------------------------------------------

def _sightings(n):
    return [[t * 500, (t * 7) % 5, [round(0.1 + (t % 9) / 100, 6), 0.2, 0.05, 0.06],
             round(99.0 - (t % 13) / 10, 4)] for t in range(n)]


def test_a_results_sightings_read_as_the_lists_they_hold():
    lists = _sightings(10000)               # over one chunk of rows
    rows = EntryRows.from_lists(lists)
    assert len(rows) == len(lists) and rows == lists and list(rows) == lists
    assert rows[0] == lists[0] and rows[-1] == lists[-1]
    assert rows[4095:4098] == lists[4095:4098]
    assert isinstance(rows[3][0], int) and isinstance(rows[3][1], int)
    assert rows.by_index() == sorted(lists, key=lambda e: (e[1], e[0]))
    assert json.loads("".join(rows.json_chunks())) == lists
    assert "".join(EntryRows().json_chunks()) == "[]"


def test_a_results_sightings_cost_a_fraction_of_lists():
    lists = _sightings(20000)
    as_lists, _ = _allocated(lambda: json.loads(json.dumps(lists)))
    as_rows, _ = _allocated(lambda: EntryRows.from_lists(json.loads(json.dumps(lists))))
    assert as_rows * 4 < as_lists, (as_rows, as_lists)


def test_a_job_store_writes_and_reads_back_a_big_result(tmp_path):
    lists = _sightings(10000)
    result = {"Matches": [[{"Similarity": 99.0, "Face": {"FaceId": "f-1"}}]] + [[]] * 4,
              "Entries": EntryRows.from_lists(lists)}
    store = JobStore(tmp_path)
    store.put({"JobId": "long", "JobStatus": "SUCCEEDED", "JobTag": '"\\u0000x:0\\u0000"',
               "Result": result})
    on_disk = json.loads((tmp_path / "jobs" / "long.json").read_text())
    assert on_disk["Result"]["Entries"] == lists
    assert on_disk["JobTag"] == '"\\u0000x:0\\u0000"'
    again = JobStore(tmp_path).result("long")
    assert isinstance(again["Entries"], EntryRows)
    assert again["Entries"] == lists and again["Matches"] == result["Matches"]


def test_described_faces_no_later_segment_can_reach_are_let_go():
    """The faces segments described are handed to later segments (the last
    video._KNOWN_KEPT, in segment order); the rest must not be kept for the
    whole video, and letting them go must not change what is handed on."""
    rng = random.Random(7)
    for _ in range(500):
        n = rng.randint(1, 12)
        finishing = list(range(n))
        rng.shuffle(finishing)                 # segments finish in any order
        kept_all, pruned = [None] * n, [None] * n
        for i in finishing:
            faces = [(i, j) for j in range(rng.choice([0, 5, 100, 256, 300]))]
            kept_all[i], pruned[i] = list(faces), list(faces)
            video._forget_unreachable(pruned)
            assert video._known(pruned) == video._known(kept_all)
        assert sum(len(d) for d in pruned) <= 2 * video._KNOWN_KEPT + 300


def test_a_worker_gives_freed_memory_back():
    """What a segment allocated and let go (frames, pyramids) leaves the
    worker: glibc otherwise keeps freed pages for later, and a worker that
    once analysed a 1080p video stayed that big for good."""
    import subprocess
    import sys

    probe = (
        "import sys; sys.path.insert(0, '.')\n"
        "from local.engine import video\n"
        "def rss():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmRSS'): return int(line.split()[1]) // 1024\n"
        "base = rss()\n"
        "blocks = [bytearray(64 * 1024) for _ in range(3000)]   # ~190 MB from malloc's heap\n"
        "blocks = blocks[-1:]   # the last one stays: the heap's top is not free\n"
        "freed = rss()\n"
        "video._give_back_free_memory()\n"
        "print(base, freed, rss())\n")
    if video._malloc_trim is None:
        pytest.skip("no glibc malloc_trim on this platform: nothing to give back with")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, cwd=str(ROOT))
    base, freed, given_back = map(int, out.stdout.split())
    assert freed - base > 150, (base, freed)           # glibc kept the freed pages
    assert given_back - base < 50, (base, freed, given_back)


def test_each_segment_and_each_analysis_give_their_memory_back(tmp_path, faces_dir,
                                                               monkeypatch):
    """The give-back above runs where the peaks end: after each segment (in
    its worker) and after the analysis has stitched the segments' answers."""
    from tests.support.face_set import make_short_video
    path = make_short_video(tmp_path / "short.mp4", faces_dir)
    calls = []
    monkeypatch.setattr(video, "_give_back_free_memory", lambda: calls.append("given back"))
    settings = video.VideoSettings(workers=0, min_segment_s=1.0, max_segment_s=2.0)
    segments = video.plan_segments(video.probe(path), settings)
    assert len(segments) == 2
    info, tracks = video.analyse(path, settings)
    assert tracks, "the short video's faces were found"
    assert len(calls) == len(segments) + 1
