"""Bulk import through the HTTP API on the one-machine stack, with real photos.

    .venv/bin/python bench/bulk_import.py [--registrations 200] [--concurrency 4]

Starts the whole stack (real processes, free ports, a temp data dir), signs
in, then imports every identity of ``../shared/faces/people`` (its first
photo) as one batch the way the site's import page does it (per row: look the
ID up, ask for a presigned POST, send the photo to S3, POST /students; at
most ``--concurrency`` rows at once), deletes them all, and repeats until
``--registrations`` are done. Every row sends its photo with a comment of its
own in the JPEG header (same pixels, different bytes), so the face engine
sees 200 photos it has never seen, as in a real import of 200 people, and its
photo cache only serves the repeated looks of one registration. Prints
people per minute, the time of each client step, the load average while it
ran (the machine may be shared), and the CPU seconds each part of the stack
used per registration: on a shared machine the steadier figure.

Then, to see where a registration's time goes on the server, registers each
photo once more in this process with the app's own ``Students`` service
against the same stack, timing each step it takes: the upload check (size,
type, bytes), the face check (DetectFaces), the duplicate-face search,
indexing, keeping the photo (copy + delete), and writing the record.
"""
import argparse
import collections
import concurrent.futures
import os
import pathlib
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import requests  # noqa: E402

FACES_DIR = pathlib.Path(os.environ.get(
    "ROLLCALL_FACES_DIR", pathlib.Path(__file__).resolve().parents[2] / "shared" / "faces"))
ADMIN = ("bench@example.org", "bench password 1234")


class Timings:
    """Seconds per named step, from several threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self.steps = collections.defaultdict(list)

    def add(self, step, seconds):
        with self._lock:
            self.steps[step].append(seconds)

    def timed(self, step, action, *args, **kwargs):
        started = time.perf_counter()
        try:
            return action(*args, **kwargs)
        finally:
            self.add(step, time.perf_counter() - started)

    def report(self, title):
        print(title)
        for step, values in self.steps.items():
            print(f"  {step:<28} n={len(values):<4} mean {statistics.mean(values):6.3f} s"
                  f"  median {statistics.median(values):6.3f} s  max {max(values):6.3f} s")


def identities():
    people = sorted(p for p in (FACES_DIR / "people").iterdir() if p.is_dir())
    if not people:
        sys.exit(f"no photos in {FACES_DIR / 'people'} (set ROLLCALL_FACES_DIR)")
    return [(p.name, (p / "1.jpg").read_bytes()) for p in people]


def load():
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def tagged(photo, tag):
    """The same JPEG with a comment segment saying ``tag`` after its start marker."""
    assert photo[:2] == b"\xff\xd8"
    text = tag.encode()
    return photo[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + photo[2:]


class LoadSampler:
    """The 1-minute load average, sampled every few seconds in the background."""

    def __init__(self, every=5.0):
        self.samples, self._every = [], every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self._every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self):
        self.samples.append(os.getloadavg()[0])
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])

    def summary(self):
        return (f"1-min load average while importing: min {min(self.samples):.1f}, "
                f"mean {statistics.mean(self.samples):.1f}, max {max(self.samples):.1f} "
                f"({len(self.samples)} samples, {os.cpu_count()} CPUs)")


def cpu_seconds(pid):
    """User + system CPU seconds of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid):
    """(resident, peak resident) MB of a process."""
    values = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


class PartCpu:
    """CPU seconds the stack's processes spend inside ``with`` blocks, summed."""

    def __init__(self, stack):
        self.pids = {part.name: part.proc.pid for part in stack.parts
                     if part.proc is not None and part.proc.poll() is None}
        self.used = collections.Counter()
        self.wall = 0.0

    def __enter__(self):
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall += time.perf_counter() - self._started
        for name, pid in self.pids.items():
            self.used[name] += cpu_seconds(pid) - self._start[name]

    def report(self, registrations):
        total = sum(self.used.values())
        print(f"CPU seconds per registration (the stack's processes while importing; "
              f"{total:.1f} s in {self.wall:.1f} s of wall time, "
              f"{total / self.wall:.2f} cores busy on average):")
        for name, used in self.used.most_common():
            print(f"  {name:<10} {used / registrations:6.3f} s")
        print(f"  {'all':<10} {total / registrations:6.3f} s")


class Client:
    def __init__(self, api_url):
        self.api = api_url
        self.http = requests.Session()
        answer = self.http.post(f"{api_url}/auth/login", json={"email": ADMIN[0],
                                                                "password": ADMIN[1]})
        answer.raise_for_status()
        self.http.headers["Authorization"] = "Bearer " + answer.json()["token"]

    def import_row(self, timings, student_id, name, photo):
        """One row as the import page sends it; the API's answer (status, body)."""
        found = timings.timed("look up the ID", self.http.get,
                              f"{self.api}/students/{student_id}")
        if found.status_code == 200:
            return 200, found.json()
        started = time.perf_counter()
        upload = self.http.post(f"{self.api}/uploads/photo",
                                json={"content_type": "image/jpeg"}).json()
        sent = requests.post(upload["upload"]["url"], data=upload["upload"]["fields"],
                             files={"file": (f"{student_id}.jpg", photo, "image/jpeg")})
        sent.raise_for_status()
        timings.add("upload (presign + S3)", time.perf_counter() - started)
        answer = timings.timed("register (POST /students)", self.http.post,
                               f"{self.api}/students",
                               json={"student_id": student_id, "full_name": name,
                                     "photo_key": upload["photo_key"]})
        return answer.status_code, answer.json()

    def delete(self, timings, student_id):
        answer = timings.timed("delete", self.http.delete, f"{self.api}/students/{student_id}")
        answer.raise_for_status()


def run_batches(client, people, total, concurrency, cpu):
    timings = Timings()
    done = failed = batch = 0
    problems = collections.Counter()
    started = time.perf_counter()
    importing = 0.0
    while done < total:
        batch += 1
        rows = [(f"B{batch}-{n}", name.replace("_", " ").title(),
                 tagged(photo, f"bench batch {batch} row {n}"))
                for n, (name, photo) in enumerate(people)][:total - done]
        batch_started = time.perf_counter()
        with cpu, concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            answers = list(pool.map(lambda row: client.import_row(timings, *row), rows))
        importing += time.perf_counter() - batch_started
        registered = []
        for (student_id, _, _), (status, body) in zip(rows, answers):
            if status == 201:
                registered.append(student_id)
            else:
                failed += 1
                problems[body.get("error", {}).get("code", status)] += 1
        done += len(registered)
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(lambda sid: client.delete(timings, sid), registered))
        print(f"batch {batch}: {len(registered)}/{len(rows)} registered in "
              f"{time.perf_counter() - batch_started:.1f} s (with deletion); load {load()}")
        if not registered:
            sys.exit(f"nothing registered in batch {batch}: {dict(problems)}")
    wall = time.perf_counter() - started
    print(f"\n{done} registrations in {importing:.1f} s of importing "
          f"({wall:.1f} s with the deletions): {60 * done / importing:.0f} people per minute "
          f"at {concurrency} at once; {failed} refused {dict(problems) or ''}")
    timings.report("client steps (per row):")
    return done


def server_steps(stack, people):
    """Register each photo with the Students service in-process, timing its parts."""
    os.environ.update(stack.environment())
    import boto3

    from chalicelib.services import Services

    services = Services()
    students = services.students
    timings = Timings()

    class Timed:
        def __init__(self, target, names):
            self._target, self._names = target, names

        def __getattr__(self, attr):
            value = getattr(self._target, attr)
            if attr in self._names and callable(value):
                return lambda *a, **k: timings.timed(self._names[attr], value, *a, **k)
            return value

    students._photos = Timed(students._photos, {
        "inspect": "upload check (head, 32 bytes)", "read": "read the image size",
        "copy": "keep the photo (copy)", "delete": "delete the upload"})
    students._faces = Timed(students._faces, {
        "check_photo": "face check (DetectFaces)", "search": "duplicate-face search",
        "index": "indexing (IndexFaces)"})
    students.store = Timed(students.store, {"create": "record (conditional put)",
                                            "get": "ID look-up (get)"})
    s3 = boto3.client("s3")
    for n, (name, photo) in enumerate(people):
        key = students.new_upload("image/jpeg")["photo_key"]
        s3.put_object(Bucket=services.settings.photos_bucket, Key=key,
                      Body=tagged(photo, f"bench one at a time {n}"),
                      ContentType="image/jpeg")
        timings.timed("whole registration", students.register, f"T-{n}", name, key)
        students.delete(f"T-{n}")
    timings.report("server steps (one at a time, in process, same stack):")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)
    from tests.support.stack import make_stack

    people = identities()
    print(f"{len(people)} identities from {FACES_DIR / 'people'}; {os.cpu_count()} CPUs; "
          f"load average {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        stack = make_stack(pathlib.Path(tmp) / "data")
        stack.start()
        try:
            stack.add_user(ADMIN[0], ADMIN[1], "admin")
            client = Client(stack.api_url)
            cpu = PartCpu(stack)
            with LoadSampler() as sampler:
                done = run_batches(client, people, args.registrations, args.concurrency, cpu)
            print(sampler.summary())
            cpu.report(done)
            faces_pid = cpu.pids.get("faces")
            if faces_pid:
                rss, peak = memory_mb(faces_pid)
                print(f"face engine memory: {rss:.0f} MB resident, peak {peak:.0f} MB")
            server_steps(stack, people)
        finally:
            stack.stop()
    print(f"load average at the end: {load()}")


if __name__ == "__main__":
    main()
