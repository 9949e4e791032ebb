"""SearchFaces, CompareFaces and the 5 default landmarks, through an unchanged boto3
client; and the call sequence of AWS's own collection demo
(aws-doc-sdk-examples, python/example_code/rekognition: create, describe,
index, list, search by face id, search by image, delete faces, delete)."""
import io

import pytest
from PIL import Image


def photo(faces_dir, identity, n=1):
    return faces_dir / "people" / identity / f"{n}.jpg"


def image(path):
    return {"Bytes": path.read_bytes()}


def test_aws_collection_demo_sequence(face_rekognition, faces_dir):
    rk = face_rekognition
    collection_id = "doc-example-collection-demo"
    created = rk.create_collection(CollectionId=collection_id)
    assert created["StatusCode"] == 200 and created["CollectionArn"]
    described = rk.describe_collection(CollectionId=collection_id)
    assert described["FaceCount"] == 0 and described["CollectionARN"] == created["CollectionArn"]

    # index: a group photo (two faces) and single photos, as the demo does
    indexed = {}
    for name, path in [("kit_with_rose.jpg", faces_dir / "group" / "kit_with_rose.jpg"),
                       ("obama.jpg", photo(faces_dir, "barack_obama", 1)),
                       ("obama2.jpg", photo(faces_dir, "barack_obama", 2)),
                       ("biden.jpg", photo(faces_dir, "joe_biden", 2))]:
        answer = rk.index_faces(CollectionId=collection_id, Image=image(path),
                                ExternalImageId=name, MaxFaces=10,
                                DetectionAttributes=["ALL"])
        indexed[name] = [r["Face"]["FaceId"] for r in answer["FaceRecords"]]
    assert len(indexed["kit_with_rose.jpg"]) == 2
    assert all(len(indexed[n]) == 1 for n in ("obama.jpg", "obama2.jpg", "biden.jpg"))
    assert rk.describe_collection(CollectionId=collection_id)["FaceCount"] == 5

    listed = rk.list_faces(CollectionId=collection_id, MaxResults=10)["Faces"]
    assert {f["FaceId"] for f in listed} == {i for ids in indexed.values() for i in ids}

    # search by face id: the other photo of the same man, nobody else, never itself
    obama = indexed["obama.jpg"][0]
    found = rk.search_faces(CollectionId=collection_id, FaceId=obama,
                            FaceMatchThreshold=80, MaxFaces=10)
    assert found["SearchedFaceId"] == obama and found["FaceModelVersion"]
    assert [m["Face"]["FaceId"] for m in found["FaceMatches"]] == indexed["obama2.jpg"]
    assert found["FaceMatches"][0]["Similarity"] >= 80
    assert found["FaceMatches"][0]["Face"]["ExternalImageId"] == "obama2.jpg"
    # with a threshold of 0 every other face comes back, best first
    everyone = rk.search_faces(CollectionId=collection_id, FaceId=obama,
                               FaceMatchThreshold=0, MaxFaces=10)["FaceMatches"]
    assert len(everyone) == 4 and obama not in {m["Face"]["FaceId"] for m in everyone}
    sims = [m["Similarity"] for m in everyone]
    assert sims == sorted(sims, reverse=True) and sims[1] < 80
    assert len(rk.search_faces(CollectionId=collection_id, FaceId=obama,
                               FaceMatchThreshold=0, MaxFaces=2)["FaceMatches"]) == 2

    # search by image: the largest face of another photo of Biden
    by_image = rk.search_faces_by_image(CollectionId=collection_id,
                                        Image=image(photo(faces_dir, "joe_biden", 3)),
                                        FaceMatchThreshold=80, MaxFaces=10)
    assert [m["Face"]["FaceId"] for m in by_image["FaceMatches"]] == indexed["biden.jpg"]

    deleted = rk.delete_faces(CollectionId=collection_id, FaceIds=indexed["kit_with_rose.jpg"])
    assert sorted(deleted["DeletedFaces"]) == sorted(indexed["kit_with_rose.jpg"])
    assert rk.describe_collection(CollectionId=collection_id)["FaceCount"] == 3
    assert rk.delete_collection(CollectionId=collection_id)["StatusCode"] == 200
    with pytest.raises(rk.exceptions.ResourceNotFoundException):
        rk.describe_collection(CollectionId=collection_id)


def test_search_faces_errors(face_rekognition, faces_dir):
    rk = face_rekognition
    rk.create_collection(CollectionId="c1")
    face_id = rk.index_faces(CollectionId="c1", Image=image(photo(faces_dir, "rose_leslie")),
                             MaxFaces=1)["FaceRecords"][0]["Face"]["FaceId"]
    alone = rk.search_faces(CollectionId="c1", FaceId=face_id)
    assert alone["FaceMatches"] == []
    with pytest.raises(rk.exceptions.InvalidParameterException, match="not found"):
        rk.search_faces(CollectionId="c1", FaceId="11111111-2222-3333-4444-555555555555")
    with pytest.raises(rk.exceptions.ResourceNotFoundException):
        rk.search_faces(CollectionId="nope", FaceId=face_id)
    with pytest.raises(rk.exceptions.InvalidParameterException):
        rk.search_faces(CollectionId="c1", FaceId="not a uuid")        # the model's pattern
    with pytest.raises(rk.exceptions.InvalidParameterException):
        rk.search_faces(CollectionId="c1", FaceId=face_id, FaceMatchThreshold=101)


def test_compare_faces(face_rekognition, faces_dir):
    rk = face_rekognition
    answer = rk.compare_faces(SourceImage=image(photo(faces_dir, "barack_obama", 1)),
                              TargetImage=image(faces_dir / "group" / "obama_and_biden.jpg"))
    assert answer["SourceImageFace"]["Confidence"] > 80
    assert len(answer["FaceMatches"]) == 1 and len(answer["UnmatchedFaces"]) == 2
    match = answer["FaceMatches"][0]
    assert match["Similarity"] >= 80
    # it is the right man: his box in the group photo (faces.json: 1133..1356 of 1936 px)
    with Image.open(faces_dir / "group" / "obama_and_biden.jpg") as img:
        width = img.width
    box = match["Face"]["BoundingBox"]
    assert abs(box["Left"] * width - 1133) < 40
    assert {m["Type"] for m in match["Face"]["Landmarks"]} == {
        "eyeLeft", "eyeRight", "mouthLeft", "mouthRight", "nose"}
    assert all(u["Confidence"] > 0 and "Pose" in u for u in answer["UnmatchedFaces"])
    # a lower threshold turns the others into (weak) matches, best first
    loose = rk.compare_faces(SourceImage=image(photo(faces_dir, "barack_obama", 1)),
                             TargetImage=image(faces_dir / "group" / "obama_and_biden.jpg"),
                             SimilarityThreshold=0)
    sims = [m["Similarity"] for m in loose["FaceMatches"]]
    assert len(sims) == 3 and sims == sorted(sims, reverse=True) and sims[1] < 80
    # different people
    other = rk.compare_faces(SourceImage=image(photo(faces_dir, "john_simm", 1)),
                             TargetImage=image(photo(faces_dir, "john_savage", 1)))
    assert other["FaceMatches"] == [] and len(other["UnmatchedFaces"]) == 1


def _blank_png():
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (200, 190, 170)).save(out, format="PNG")
    return {"Bytes": out.getvalue()}


def test_compare_faces_errors(face_rekognition, faces_dir):
    rk = face_rekognition
    face = image(photo(faces_dir, "rose_leslie", 1))
    with pytest.raises(rk.exceptions.InvalidParameterException):
        rk.compare_faces(SourceImage=_blank_png(), TargetImage=face)
    with pytest.raises(rk.exceptions.InvalidParameterException):
        rk.compare_faces(SourceImage=face, TargetImage=_blank_png())
    with pytest.raises(rk.exceptions.InvalidImageFormatException):
        rk.compare_faces(SourceImage={"Bytes": b"GIF89a not a photo"}, TargetImage=face)


def test_five_default_landmarks_where_a_face_has_them(face_rekognition, faces_dir):
    rk = face_rekognition
    for who in ("barack_obama", "rose_leslie", "john_simm"):
        detail = rk.detect_faces(Image=image(photo(faces_dir, who, 1)))["FaceDetails"][0]
        marks = {m["Type"]: (m["X"], m["Y"]) for m in detail["Landmarks"]}
        assert [m["Type"] for m in detail["Landmarks"]] == [
            "eyeLeft", "eyeRight", "mouthLeft", "mouthRight", "nose"]
        box = detail["BoundingBox"]
        for x, y in marks.values():                      # inside the face box
            assert box["Left"] - 0.02 <= x <= box["Left"] + box["Width"] + 0.02
            assert box["Top"] - 0.02 <= y <= box["Top"] + box["Height"] + 0.02
        assert marks["eyeLeft"][0] < marks["eyeRight"][0]
        assert marks["mouthLeft"][0] < marks["mouthRight"][0]
        eyes_y = (marks["eyeLeft"][1] + marks["eyeRight"][1]) / 2
        mouth_y = (marks["mouthLeft"][1] + marks["mouthRight"][1]) / 2
        assert eyes_y < marks["nose"][1] < mouth_y          # eyes, nose, mouth downwards
