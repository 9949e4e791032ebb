"""Benchmark: a large video uploaded through the site, with the network cut once.

Starts the one-machine stack, makes a file of --size bytes (default 1 GiB:
an MP4 header, then filler; the face search later fails on it, which is not
measured here), signs in with Debian's Chromium (Playwright), uploads it from
the upload page and, when --cut-at of it has gone, takes the browser offline
for --offline seconds (every part in flight fails; the page waits for the
network and carries on). Prints, measured in this run:

- wall time and throughput of the whole upload;
- parts sent, part requests that failed, and the bytes sent in total against
  the file's size (how much was sent twice: never the whole file again);
- whether S3 holds exactly the file (size and SHA-256).

Asserts nothing about speed. ``python bench/resumable_upload.py --size 200000000``
for a quicker run.
"""
import argparse
import hashlib
import os
import pathlib
import sys
import tempfile
import time
import urllib.parse

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser_support import CHROMIUM, launch  # noqa: E402
from tests.stack_support import boto_client, running_stack  # noqa: E402

USER = ("bench@example.org", "bench password 123", "teacher")
HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


def make_file(path, size):
    """``size`` bytes: the MP4 header, then blocks of varied filler; its SHA-256."""
    digest = hashlib.sha256()
    block = os.urandom(4 * 1024 * 1024)
    with open(path, "wb") as out:
        out.write(HEAD)
        digest.update(HEAD)
        left = size - len(HEAD)
        while left > 0:
            chunk = block[:left]
            out.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def part_number(url):
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    return int(query["partNumber"][0]) if "partNumber" in query else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024 ** 3, help="bytes (default 1 GiB)")
    parser.add_argument("--cut-at", type=float, default=0.4, help="share sent before the cut")
    parser.add_argument("--offline", type=float, default=4.0, help="seconds without network")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    if not pathlib.Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: run 'make browser'")
    with tempfile.TemporaryDirectory(prefix="rollcall-bench-") as tmp:
        tmp = pathlib.Path(tmp)
        video = tmp / "lecture.mp4"
        print(f"making a {args.size / 1024 ** 3:.2f} GiB file...", flush=True)
        expected = make_file(video, args.size)
        with running_stack(tmp / "stack") as stack, sync_playwright() as playwright:
            stack.add_user(*USER)
            browser = launch(playwright)
            page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
            page.set_default_timeout(60_000)
            sent, failed = [], []
            page.on("requestfinished", lambda r: part_number(r.url) and r.method == "PUT"
                    and sent.append(part_number(r.url)))
            page.on("requestfailed", lambda r: part_number(r.url) and r.method == "PUT"
                    and failed.append(part_number(r.url)))
            page.goto(stack.site_url + "#/login")
            page.get_by_label("Email").fill(USER[0])
            page.get_by_label("Password").fill(USER[1])
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_selector("h1:text('Sessions')")
            page.goto(stack.site_url + "#/upload")
            page.get_by_label("Recording").set_input_files(str(video))
            page.get_by_label("Title").fill("Bench lecture")
            started = time.monotonic()
            page.get_by_role("button", name="Upload and take attendance").click()
            share = "() => { const b = document.querySelector('.upload-form progress'); return b ? b.value : 0; }"
            while page.evaluate(share) < 100 * args.cut_at:
                page.wait_for_timeout(200)
            cut_at = time.monotonic() - started
            page.context.set_offline(True)
            page.wait_for_timeout(args.offline * 1000)
            page.context.set_offline(False)
            print(f"network cut at {cut_at:.1f} s for {args.offline:.0f} s "
                  f"({len(failed)} part requests failed)", flush=True)
            page.wait_for_url("**/#/sessions/*", timeout=3_600_000)
            elapsed = time.monotonic() - started
            session_id = page.url.rsplit("/", 1)[1]
            browser.close()
            s3 = boto_client("s3", stack.moto_url)
            bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].endswith("-videos"))
            body = s3.get_object(Bucket=bucket, Key=f"videos/{session_id}/video.mp4")["Body"]
            digest, stored = hashlib.sha256(), 0
            for chunk in iter(lambda: body.read(8 * 1024 * 1024), b""):
                digest.update(chunk)
                stored += len(chunk)
        part_size = 8 * 1024 * 1024
        total_sent = sum(min(part_size, args.size - (n - 1) * part_size) for n in sent)
        print(f"file              {args.size:,} bytes")
        print(f"upload time       {elapsed:.1f} s ({args.size / elapsed / 1024 ** 2:.1f} MiB/s "
              f"including the {args.offline:.0f} s offline)")
        print(f"parts             {len(set(sent))} stored, {len(sent)} sent in full, "
              f"{len(failed)} requests failed at the cut")
        print(f"bytes sent whole  {total_sent:,} ({total_sent / args.size:.3f} of the file; "
              f"failed requests' partial bytes not counted)")
        print(f"stored in S3      {stored:,} bytes, SHA-256 "
              f"{'matches' if digest.hexdigest() == expected else 'DIFFERS'}")


if __name__ == "__main__":
    main()
