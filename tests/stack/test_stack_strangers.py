"""The real clip on the one-machine stack, nobody registered: each person once.

Real processes (moto, the face engine, the bridge, the API): the clip of
../shared/faces/videos is uploaded as the site does, the face search, the
completion and the evidence function (crops, then grouping by face) run as
they would, and the page's answer is read. Lin-Manuel Miranda (the label's
``present``) is the one person the label vouches for: exactly one of the
unrecognised entries is him, checked against his photo, which the app never
saw (CompareFaces on the engine, not the grouping's own calls).
"""
import json

import pytest
import requests

from tests.support.stack import SiteClient, boto_client, make_stack, presigned_post, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.engine, pytest.mark.slow]


def test_the_real_clip_shows_each_unrecognised_person_once(tmp_path, faces_dir):
    clip = faces_dir / "videos" / "short_hamilton_clip.mp4"
    label = json.loads(clip.with_suffix(".json").read_text())
    assert label["present"] == ["lin_manuel_miranda"]
    stack = make_stack(tmp_path / "data")
    stack.start()
    try:
        browser = SiteClient(stack.api_url, stack.site_url)
        browser.sign_in(stack.first_admin["email"], stack.first_admin["password"])
        created = browser.call("POST", "/sessions", {
            "title": "Hamilton rehearsal", "content_type": "video/mp4"}, expect=201)
        session_id = created["session"]["session_id"]
        sent = presigned_post(created["upload"], clip.read_bytes(), "clip.mp4", "video/mp4",
                              origin=stack.site_url)
        assert sent.status_code in (200, 201, 204), sent.text

        def crops_done():
            session = browser.call("GET", f"/sessions/{session_id}")["session"]
            if session["status"] == "FAILED":
                pytest.fail(session["error"])
            return session if session.get("evidence_status") in ("ready", "failed") else None
        session = wait_for(crops_done, 240, interval=1, what="the crops and the grouping")
        assert session["evidence_status"] == "ready"
        strangers = session["strangers"]
        assert session["counts"]["unrecognised"] == len(strangers) >= 1
        assert not any(s.get("merged_into") for s in strangers)

        faces = boto_client("rekognition", stack.faces_url)
        photo = (faces_dir / "people" / "lin_manuel_miranda" / "1.jpg").read_bytes()
        him = []
        for entry in strangers:
            crop = requests.get(entry["crop"], timeout=10).content
            try:
                answer = faces.compare_faces(SourceImage={"Bytes": photo},
                                             TargetImage={"Bytes": crop},
                                             SimilarityThreshold=80.0)
            except faces.exceptions.InvalidParameterException:
                continue  # no face the engine can read in this crop
            if answer["FaceMatches"]:
                him.append(entry["number"])
        print(f"unrecognised entries shown: {len(strangers)}; Lin-Manuel Miranda among "
              f"them: {len(him)}; grouped log: "
              f"{[line for line in stack.out.text().splitlines() if 'grouped' in line]}")
        assert len(him) == 1, strangers
    finally:
        stack.stop()
