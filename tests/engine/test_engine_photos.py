"""Still photos in the face engine: many requests at once, and the photo cache.

Image requests lease a model set each from a pool (``face_engine.ModelPool``),
so several photos are analysed at once; the faces of the last photos are kept
under the SHA-256 of their bytes (``face_engine.PhotoAnalyser``). Here: served
at once they answer exactly what they answer one at a time, and the cache only
ever answers for the very same bytes. Real photos from ../shared/faces.
"""
import concurrent.futures
import io
import threading

import pytest
from PIL import Image

from local.engine import face_engine
from local.engine.rekognition_server import RekognitionServer
from tests.support import aws as aws_support
from tests.support.aws import REGION

pytestmark = pytest.mark.engine

# Portraits of several sizes (150 px to 2.1 MP) and photos with several faces.
PHOTOS = ["people/barack_obama/1.jpg", "people/joe_biden/1.jpg", "people/john_salley/1.jpg",
          "people/kit_harington/1.jpg", "people/lin_manuel_miranda/1.jpg",
          "people/rose_leslie/2.jpg", "group/two_people.jpg", "group/kit_with_rose.jpg"]


def tagged(data, text):
    """The same JPEG (same pixels) with a comment segment: other bytes."""
    text = text.encode()
    return data[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + data[2:]


def mirrored(data):
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).transpose(Image.FLIP_LEFT_RIGHT).save(buffer, "JPEG",
                                                                       quality=95)
    return buffer.getvalue()


def png_stored(image, flip):
    """An uncompressed PNG: its length depends on the size only, not the pixels."""
    if flip:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


def summary(analyser, data):
    """Everything an operation reads of a photo's faces, descriptors included."""
    photo = analyser.analyse(data)
    descriptors = analyser.describe(photo.faces)
    return (photo.width, photo.height,
            [(f.box, f.score, f.view, f.landmarks, f.pose, f.quality, d.tolist())
             for f, d in zip(photo.faces, descriptors)])


@pytest.fixture(scope="module")
def photos(faces_dir_module):
    return [(faces_dir_module / p).read_bytes() for p in PHOTOS]


def test_a_pool_lends_each_thread_its_own_set_and_no_more_sets_than_its_size():
    pool = face_engine.ModelPool(2)
    own = face_engine.models()
    held = {name: threading.Event() for name in "abc"}
    release = {name: threading.Event() for name in "abc"}
    seen = {}

    def hold(name):
        with pool.lease() as models:
            seen[name] = (models, face_engine.models())
            held[name].set()
            release[name].wait(30)

    threads = {name: threading.Thread(target=hold, args=(name,)) for name in "abc"}
    threads["a"].start()
    assert held["a"].wait(30)
    threads["b"].start()
    assert held["b"].wait(30)
    a, b = seen["a"][0], seen["b"][0]
    assert a is not b and own in (a, b)              # the process's own set is one of them
    assert a.detector is not b.detector
    assert a.predictor is b.predictor                # read-only: shared
    assert all(models is current for models, current in seen.values())
    assert face_engine.models() is own               # this thread holds none

    threads["c"].start()                             # both sets are out: c waits
    assert not held["c"].wait(0.5)
    release["a"].set()
    assert held["c"].wait(30)
    assert seen["c"][0] is a and pool.loaded == 2    # a's set, no third one
    for name in "bc":
        release[name].set()
    for thread in threads.values():
        thread.join(30)


def test_photos_analysed_at_once_give_the_answers_of_one_at_a_time(photos):
    expected = [summary(face_engine.PhotoAnalyser(workers=1, cache_size=0), data)
                for data in photos]
    analyser = face_engine.PhotoAnalyser(workers=2, cache_size=0)   # every request looks
    with concurrent.futures.ThreadPoolExecutor(4) as threads:
        answers = list(threads.map(lambda data: summary(analyser, data), photos * 2))
    assert answers == expected * 2
    assert analyser.pool.loaded == 2 and analyser.misses == 2 * len(photos)
    assert [len(faces) for _, _, faces in expected] == [1, 1, 1, 1, 1, 1, 2, 2]


def test_the_cache_answers_only_for_the_same_bytes(photos):
    analyser = face_engine.PhotoAnalyser(workers=1, cache_size=2)
    fresh = face_engine.PhotoAnalyser(workers=1, cache_size=0)
    portrait = photos[0]
    first = analyser.analyse(portrait)
    assert analyser.analyse(portrait) is first and (analyser.hits, analyser.misses) == (1, 1)

    # The same pixels in other bytes are looked at again (and agree).
    retagged = analyser.analyse(tagged(portrait, "another file"))
    assert retagged is not first and analyser.misses == 2
    assert summary(analyser, tagged(portrait, "another file")) == summary(fresh, portrait)

    # Other pixels: the mirror image's face is on the other side, not the cached one.
    flipped = mirrored(portrait)
    face = analyser.analyse(flipped).faces[0]
    assert summary(analyser, flipped) == summary(fresh, flipped)
    centre, mirrored_centre = ((f.box[0] + f.box[2]) / 2 for f in (first.faces[0], face))
    assert abs(mirrored_centre - (first.width - centre)) < 0.02 * first.width

    # Same length, other pixels (uncompressed PNGs of one size): looked at again.
    original, turned = (png_stored(Image.open(io.BytesIO(photos[3])), flip)
                        for flip in (False, True))
    assert len(original) == len(turned) and original != turned
    assert summary(analyser, original) == summary(fresh, original)
    assert summary(analyser, turned) == summary(fresh, turned) != summary(fresh, original)

    # At most cache_size photos are kept, the least recently used leaves first.
    analyser.analyse(flipped)                        # kept: the turned PNG and this
    misses = analyser.misses
    analyser.analyse(portrait)                       # in, the turned PNG out
    analyser.analyse(flipped)
    assert analyser.misses == misses + 1 and analyser.cached() == 2
    analyser.analyse(turned)
    assert analyser.misses == misses + 2 and analyser.cached() == 2


@pytest.fixture
def endpoints(aws):
    """Two endpoints on the same moto: 2 image workers without a cache, and the default."""
    servers = [RekognitionServer(s3_client=aws_support.client("s3"),
                                 sns_client=aws_support.client("sns"), region=REGION,
                                 image_workers=workers, photo_cache_size=cache).start()
               for workers, cache in ((2, 0), (1, None))]
    yield [aws_support.client("rekognition", endpoint_url=s.url) for s in servers]
    for server in servers:
        server.stop()


def test_the_endpoint_answers_requests_at_once_as_one_at_a_time(endpoints, photos):
    concurrent_client, serial_client = endpoints
    for client in endpoints:
        client.create_collection(CollectionId="class")
        for n, data in enumerate(photos[:6]):
            client.index_faces(CollectionId="class", Image={"Bytes": data},
                               ExternalImageId=f"p{n}", MaxFaces=1)

    def ask(client, data):
        detected = client.detect_faces(Image={"Bytes": data})["FaceDetails"]
        searched = client.search_faces_by_image(CollectionId="class", Image={"Bytes": data},
                                                FaceMatchThreshold=0)
        return detected, [(m["Face"]["ExternalImageId"], m["Similarity"])
                          for m in searched["FaceMatches"]], searched["SearchedFaceBoundingBox"]

    expected = [ask(serial_client, data) for data in photos]
    with concurrent.futures.ThreadPoolExecutor(6) as threads:
        answers = list(threads.map(lambda data: ask(concurrent_client, data), photos * 2))
    assert answers == expected * 2
    # Each portrait finds itself first, at 100.
    for n, (_, matches, _) in enumerate(expected[:6]):
        assert matches[0][0] == f"p{n}" and matches[0][1] > 99.9


def test_an_s3_object_replaced_by_another_photo_is_looked_at_again(endpoints, photos):
    _, client = endpoints                                       # the one with a cache
    s3 = aws_support.client("s3")
    s3.create_bucket(Bucket="photos")
    client.create_collection(CollectionId="class")
    image = {"S3Object": {"Bucket": "photos", "Name": "upload.jpg"}}
    s3.put_object(Bucket="photos", Key="upload.jpg", Body=photos[0])
    client.index_faces(CollectionId="class", Image=image, ExternalImageId="obama")
    assert client.detect_faces(Image=image)["FaceDetails"] == client.detect_faces(
        Image={"Bytes": photos[0]})["FaceDetails"]

    s3.put_object(Bucket="photos", Key="upload.jpg", Body=photos[6])    # two people
    assert len(client.detect_faces(Image=image)["FaceDetails"]) == 2
    s3.put_object(Bucket="photos", Key="upload.jpg", Body=photos[1])    # Joe Biden
    assert client.search_faces_by_image(CollectionId="class", Image=image)["FaceMatches"] == []
    s3.put_object(Bucket="photos", Key="upload.jpg", Body=photos[0])
    [match] = client.search_faces_by_image(CollectionId="class", Image=image)["FaceMatches"]
    assert match["Face"]["ExternalImageId"] == "obama" and match["Similarity"] > 99.9
