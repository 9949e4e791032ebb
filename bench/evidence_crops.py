"""Benchmark: cutting a session's evidence crops (chalicelib/evidence.py), and what it costs.

Makes a 1280x720 H.264 video (libx264's default keyframe interval: the worst
case for seeking, as a phone's 1-2 s interval is cheaper) with faces from
../shared/faces, then cuts crops the way the evidence function does (from a
file object, seeking to each moment), and prints, measured in this run:

- wall time per moment (a seek and a decode to the frame) and per crop;
- decoding every frame of the video (what cutting would cost without seeks);
- the estimate for one hour of video: a class of 30 present students (best
  match and first sighting each) and 20 unrecognised people (crop and photo
  each) is 100 moments, whatever the video's length; and the Lambda price of
  that at the evidence function's memory (1536 MB) and $0.0000166667 per
  GB-second (us-east-1 x86), plus the ranged S3 GETs.

Asserts nothing: it prints figures. ``make bench`` runs it.
"""
import argparse
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chalicelib.evidence import Cut, cut_from  # noqa: E402
from tests.support.video_maker import make_video  # noqa: E402

LAMBDA_GB = 1.536
PRICE_GB_SECOND = 0.0000166667
PRICE_GET = 0.0000004
MOMENTS_PER_HOUR = 100


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--moments", type=int, default=40)
    args = parser.parse_args(argv)
    people = ROOT.parent / "shared" / "faces" / "people"
    faces = [people / name / "2.jpg" for name in ("barack_obama", "john_simm", "joe_biden",
                                                  "rose_leslie", "john_savage")]
    with tempfile.TemporaryDirectory() as tmp:
        video = pathlib.Path(tmp) / "class.mp4"
        started = time.perf_counter()
        meta = make_video(video, [
            dict(image=path, start_s=0.0, end_s=args.seconds, x=40 + 240 * i, y=120 + 40 * (i % 2),
                 height=90 + 10 * i) for i, path in enumerate(faces)],
            size=(1280, 720), fps=25, duration_s=args.seconds)
        print(f"video: {args.seconds:.0f} s, 1280x720, 25 fps, H.264, "
              f"{video.stat().st_size / 1e6:.1f} MB (made in {time.perf_counter() - started:.0f} s)")
        boxes = []
        for appearance in meta["appearances"]:
            l, t, r, b = appearance["face_box"]
            boxes.append((l / 1280, t / 720, (r - l) / 1280, (b - t) / 720))
        step = args.seconds * 1000 / args.moments
        cuts = []
        for k in range(args.moments):
            ms = int(step * k + step / 2)
            box = boxes[k % len(boxes)]
            cuts.append(Cut(f"m{k}", ms, box))
            cuts.append(Cut(f"m{k}-photo", ms, box, photo=True))
        started = time.perf_counter()
        with open(video, "rb") as handle:
            sizes = [len(data) for _, data in cut_from(handle, cuts)]
        cutting = time.perf_counter() - started
        per_moment = cutting / args.moments
        print(f"cut {len(sizes)} crops at {args.moments} moments in {cutting:.2f} s: "
              f"{per_moment * 1000:.0f} ms a moment, {cutting / len(sizes) * 1000:.0f} ms a crop, "
              f"{sum(sizes) / len(sizes) / 1000:.0f} KB a crop on average")

        import av
        started = time.perf_counter()
        frames = 0
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for _ in container.decode(stream):
                frames += 1
        decode_all = time.perf_counter() - started
        print(f"decoding every frame: {frames} frames in {decode_all:.1f} s "
              f"({frames / decode_all:.0f} frames/s, {args.seconds / decode_all:.1f}x real time)")

    hour_seconds = MOMENTS_PER_HOUR * per_moment
    lambda_cost = hour_seconds * LAMBDA_GB * PRICE_GB_SECOND
    gets = MOMENTS_PER_HOUR * 4  # ~4 MB read around each moment, 1 MB ranged GETs
    print(f"one hour of video, {MOMENTS_PER_HOUR} moments: about {hour_seconds:.0f} s of the "
          f"evidence function = ${lambda_cost:.4f} Lambda + ${gets * PRICE_GET:.4f} S3 GETs "
          f"(the whole video decoded instead: {3600 / (args.seconds / decode_all):.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
