"""On one machine, an iPhone-style HEVC .mov of a class comes out with the same
register as its H.264 twin: the whole stack (moto, face engine, converter,
bridge, API) as real processes, the converted path shown on the session."""
import fractions
import time

import av
import pytest

from tests.support.stack import SiteClient, presigned_post, running_stack

pytestmark = [pytest.mark.stack, pytest.mark.engine, pytest.mark.slow]

PEOPLE = [("S-1", "Barack Obama", "barack_obama/1.jpg", "barack_obama/2.jpg"),
          ("S-2", "Rose Leslie", "rose_leslie/1.jpg", "rose_leslie/2.jpg"),
          ("S-3", "Joe Biden", "joe_biden/2.jpg", None)]  # registered, not in the video



def to_hevc_mov(source, target):
    """Re-encode an H.264 MP4 as HEVC in a MOV with the hvc1 tag, as iPhones record."""
    with av.open(str(source)) as inp, av.open(str(target), "w", format="mov") as out:
        src = inp.streams.video[0]
        rate = src.average_rate or fractions.Fraction(10)
        stream = out.add_stream("libx265", rate=rate)
        stream.width, stream.height, stream.pix_fmt = src.width, src.height, "yuv420p"
        stream.codec_tag = "hvc1"
        stream.options = {"crf": "24", "x265-params": "log-level=error"}
        for index, decoded in enumerate(inp.decode(src)):
            frame = av.VideoFrame.from_ndarray(decoded.to_ndarray(format="rgb24"), format="rgb24")
            frame.pts, frame.time_base = index, 1 / fractions.Fraction(rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def wait_completed(api, session_id, timeout=400):
    deadline = time.monotonic() + timeout
    seen = set()
    while time.monotonic() < deadline:
        detail = api.call("GET", f"/sessions/{session_id}")
        seen.add(detail["session"]["status"])
        if detail["session"]["status"] in ("COMPLETED", "FAILED"):
            return detail, seen
        time.sleep(1)
    raise AssertionError(f"session {session_id} did not finish in {timeout} s: {seen}")


def test_an_hevc_mov_gives_the_same_register_as_its_h264_twin(tmp_path, faces_dir):
    from tests.support.video_maker import make_video

    shown = [p for p in PEOPLE if p[3]]
    h264 = tmp_path / "class.mp4"
    make_video(str(h264), [{"image": str(faces_dir / "people" / photo), "start_s": 0.3 + 0.4 * i,
                            "end_s": 4.5, "x": 20 + 210 * i, "y": 50, "height": 100,
                            "drift": 3} for i, (_, _, _, photo) in enumerate(shown)],
               size=(640, 360), fps=10, duration_s=5.0)
    hevc = tmp_path / "IMG_0001.MOV"
    to_hevc_mov(h264, hevc)

    with running_stack(tmp_path / "data") as stack:
        api = SiteClient(stack.api_url, stack.site_url)
        admin = stack.first_admin
        api.token = api.call("POST", "/auth/login", {"email": admin["email"],
                                                     "password": admin["password"]})["token"]
        for student_id, name, photo, _ in PEOPLE:
            answer = api.call("POST", "/uploads/photo", {"content_type": "image/jpeg"})
            presigned_post(answer["upload"], (faces_dir / "people" / photo).read_bytes(),
                           "photo.jpg", "image/jpeg", origin=stack.site_url)
            api.call("POST", "/students", {"student_id": student_id, "full_name": name,
                                           "photo_key": answer["photo_key"]}, expect=201)
        registers = {}
        for path, content_type in ((h264, "video/mp4"), (hevc, "video/quicktime")):
            created = api.call("POST", "/sessions", {"title": path.name,
                                                     "content_type": content_type}, expect=201)
            sent = presigned_post(created["upload"], path.read_bytes(), path.name,
                                  content_type, origin=stack.site_url)
            assert sent.status_code in (200, 201, 204), sent.text
            registers[path.name] = created["session"]["session_id"]
        results = {name: wait_completed(api, sid) for name, sid in registers.items()}

    plain, _ = results["class.mp4"]
    converted, statuses = results["IMG_0001.MOV"]
    assert converted["session"]["status"] == "COMPLETED", converted["session"]
    assert converted["session"]["media"]["codec"] == "hevc"
    assert converted["session"]["analysis_key"].startswith("converted/")
    assert "CONVERTING" in statuses or converted["session"]["analysis_key"]

    def register(detail):
        return {row["student_id"]: row["status"] for row in detail["attendance"]}
    assert register(plain) == {"S-1": "PRESENT", "S-2": "PRESENT", "S-3": "ABSENT"}, plain
    assert register(converted) == register(plain)
