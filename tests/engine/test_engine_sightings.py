"""A finished track's sightings (local.engine.tracking.Sightings) read as the
list of (timestamp_ms, box, confidence) tuples they replace, at a fraction of
the memory: an hour-long video's tracks must not grow the endpoint with the
video's length."""
import pickle
import tracemalloc

from local.engine.tracking import Sightings
from local.engine.video import stitch, VideoSettings

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
