"""Load on the one-machine stack: many clients at once, latency and throughput.

    .venv/bin/python bench/load.py [--clients 50] [--seconds 20] [--max-requests 20000]
                                   [--analysing] [--clip-seconds 40]
                                   [--api-url http://127.0.0.1:8001 --email E --password P]

Without ``--api-url`` it starts its own stack (free ports on 127.0.0.1, a
temporary data dir) and signs in as the first admin. Every client is a thread
with its own keep-alive connection (``http.client``: the clients share the
two cores with the stack, so they should cost it little), sending what the
site sends while a teacher works: the session list, a session's detail, the
roster, who am I. Bounded: it stops after ``--seconds`` (at most 120) or
``--max-requests``, and only ever talks to 127.0.0.1.

``--analysing`` keeps the stack's face engine analysing a video for the
whole run: a generated clip (real faces from ../shared/faces when present,
else a plain one) is uploaded to a new session as the site does, the load
starts once the engine works on it, and a new one is uploaded whenever the
last one finishes.

Prints the requests, errors (any non-2xx answer or connection failure),
requests/s, p50/p95/p99 latency, the CPU each process spent per request,
the CPUs and the load average (the machine may be shared: read the figures
with it).
"""
import argparse
import http.client
import json
import os
import pathlib
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import requests  # noqa: E402


def _local_only(url):
    host = urllib.parse.urlsplit(url).hostname
    if host != "127.0.0.1":
        raise SystemExit(f"refusing to load {host}: this bench talks to 127.0.0.1 only")
    return url.rstrip("/")


def _sign_in(api, email, password):
    answer = requests.post(api + "/auth/login", json={"email": email, "password": password},
                           timeout=30)
    answer.raise_for_status()
    return answer.json()["token"]


def _seed(api, token, sessions=5):
    """A few sessions to read (awaiting upload: no face work needed)."""
    headers = {"Authorization": "Bearer " + token}
    ids = []
    for n in range(sessions):
        answer = requests.post(api + "/sessions", headers=headers, timeout=30, json={
            "title": f"Load {n}", "content_type": "video/mp4", "date": "2026-11-30"})
        answer.raise_for_status()
        ids.append(answer.json()["session"]["session_id"])
    return ids


def _paths(session_ids):
    paths = ["/sessions", "/students", "/auth/me", "/health"]
    paths += [f"/sessions/{sid}" for sid in session_ids]
    return paths


def run(api, token, session_ids, clients, seconds, max_requests):
    paths = _paths(session_ids)
    latencies, errors, lock = [], [], threading.Lock()
    stop_at = time.monotonic() + seconds
    budget = [max_requests]
    start = threading.Barrier(clients + 1)

    where = urllib.parse.urlsplit(api)
    headers = {"Authorization": "Bearer " + token}

    def client(n):
        connection = None
        i = n
        start.wait()
        while time.monotonic() < stop_at:
            with lock:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            path = paths[i % len(paths)]
            i += 1
            began = time.perf_counter()
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(where.hostname, where.port,
                                                            timeout=30)
                connection.request("GET", where.path + path, headers=headers)
                answer = connection.getresponse()
                answer.read()
                ok = 200 <= answer.status < 300
                what = answer.status
                if answer.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as error:
                ok, what = False, type(error).__name__
                if connection is not None:
                    connection.close()
                connection = None
            took = time.perf_counter() - began
            with lock:
                latencies.append(took)
                if not ok:
                    errors.append((path, what))

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.monotonic()
    for thread in threads:
        thread.join(seconds + 60)
    elapsed = time.monotonic() - began
    return latencies, errors, elapsed


def _percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(latencies, errors, elapsed, clients):
    load = os.getloadavg()
    count = len(latencies)
    print(f"clients {clients}, {elapsed:.1f} s, {count} requests, {len(errors)} errors, "
          f"{count / elapsed:.0f} requests/s")
    if latencies:
        ms = [1000 * v for v in latencies]
        print(f"latency ms: p50 {_percentile(ms, 0.50):.0f}, p95 {_percentile(ms, 0.95):.0f}, "
              f"p99 {_percentile(ms, 0.99):.0f}, max {max(ms):.0f}, "
              f"mean {statistics.fmean(ms):.0f}")
    if errors:
        kinds = {}
        for path, what in errors:
            kinds[str(what)] = kinds.get(str(what), 0) + 1
        print("errors:", json.dumps(kinds))
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f} (1/5/15 min)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--max-requests", type=int, default=20000)
    parser.add_argument("--analysing", action="store_true",
                        help="keep the face engine analysing a video during the run")
    parser.add_argument("--clip-seconds", type=float, default=40.0,
                        help="length of the analysed clip (--analysing)")
    parser.add_argument("--api-url")
    parser.add_argument("--email")
    parser.add_argument("--password")
    args = parser.parse_args(argv)
    seconds = min(args.seconds, 120.0)
    clients = max(1, min(args.clients, 200))
    video = _clip(min(max(args.clip_seconds, 5.0), 120.0)) if args.analysing else None
    if args.api_url:
        api = _local_only(args.api_url)
        token = _sign_in(api, args.email, args.password)
        run_and_report(api, token, clients, seconds, args.max_requests, video=video)
        return 0
    from tests.support.stack import make_stack
    with tempfile.TemporaryDirectory(prefix="rollcall-load-") as tmp:
        stack = make_stack(pathlib.Path(tmp) / "data")
        started = time.monotonic()
        stack.start()
        print(f"stack started in {time.monotonic() - started:.1f} s")
        try:
            api = _local_only(stack.api_url)
            token = _sign_in(api, stack.first_admin["email"], stack.first_admin["password"])
            parts = {part.name: part.proc.pid for part in stack.parts
                     if part.name != "provision" and part.running()}
            errors = run_and_report(api, token, clients, seconds, args.max_requests, parts,
                                    video)
        finally:
            stack.stop()
        if errors:
            _print_logged_errors(stack.log_dir)
    return 0


def _print_logged_errors(log_dir, most=3):
    """The last errors the stack's parts logged (the temporary data dir goes):
    JSON error lines, and tracebacks whole."""
    for log in sorted(pathlib.Path(log_dir).glob("*.log")):
        found, block = [], None
        for line in log.read_text(errors="replace").splitlines():
            if '"level": "ERROR"' in line:
                found.append([line[:3000]])
            elif line.startswith("Traceback"):
                block = [line]
            elif block is not None:
                block.append(line)
                if not line.startswith((" ", "\t")):
                    found.append(block)
                    block = None
        for lines in found[-most:]:
            print("\n".join(f"{log.stem}: {line}" for line in lines))


# -- a video being analysed meanwhile ------------------------------------------------
def _clip(seconds):
    """An H.264 clip (bytes) for the face engine: three real faces moving about
    when the shared face photos are there, else a plain changing picture."""
    root = pathlib.Path(__file__).resolve().parent.parent
    faces = pathlib.Path(os.environ.get("ROLLCALL_FACES_DIR", root.parent / "shared" / "faces"))
    people = ["barack_obama/2.jpg", "rose_leslie/2.jpg", "alex_lacamoire/2.jpg"]
    began = time.monotonic()
    if all((faces / "people" / p).is_file() for p in people):
        from tests.support.video_maker import make_video
        with tempfile.TemporaryDirectory(prefix="rollcall-clip-") as tmp:
            path = pathlib.Path(tmp) / "class.mp4"
            make_video(str(path), [
                {"image": str(faces / "people" / photo), "start_s": 0.3 + 0.4 * i,
                 "end_s": seconds - 0.5, "x": 20 + 210 * i, "y": 50, "height": 100, "drift": 6}
                for i, photo in enumerate(people)], size=(640, 360), fps=10, duration_s=seconds)
            data, what = path.read_bytes(), "three faces"
    else:
        from tests.support.clips import encode
        data, what = encode("mp4", "h264", width=640, height=360, fps=10,
                            seconds=seconds), "no faces (../shared/faces not found)"
    print(f"clip: {seconds:.0f} s, 640x360, {what}, {len(data) // 1024} KiB "
          f"(made in {time.monotonic() - began:.1f} s)")
    return data


class Analyses(threading.Thread):
    """Keeps one video being analysed: uploads it to a new session as the site
    does, and again whenever the last one has finished."""

    def __init__(self, api, token, video):
        super().__init__(daemon=True)
        self.api, self.video = api, video
        self.headers = {"Authorization": "Bearer " + token}
        self.working = threading.Event()  # the engine has started on the first one
        self.stop = threading.Event()
        self.finished, self.failed, self.current = 0, 0, None
        self.error = None

    def _upload(self, n):
        from tests.support.stack import presigned_post
        answer = requests.post(self.api + "/sessions", headers=self.headers, timeout=30, json={
            "title": f"Analysed {n}", "content_type": "video/mp4", "date": "2026-11-30"})
        answer.raise_for_status()
        created = answer.json()
        sent = presigned_post(created["upload"], self.video, "class.mp4", "video/mp4")
        sent.raise_for_status()
        return created["session"]["session_id"]

    def run(self):
        try:
            n = 0
            self.current = self._upload(n)
            while not self.stop.wait(0.5):
                status = requests.get(f"{self.api}/sessions/{self.current}",
                                      headers=self.headers, timeout=30).json()["session"]
                if status["status"] == "PROCESSING":
                    self.working.set()
                elif status["status"] in ("COMPLETED", "FAILED"):
                    self.finished += 1
                    self.failed += status["status"] == "FAILED"
                    n += 1
                    self.current = self._upload(n)
        except Exception as error:  # reported; the load run goes on
            self.error = error
            self.working.set()

    def done(self):
        self.stop.set()
        self.join(60)


def _cpu_seconds(pid):
    """User + system CPU time so far of a process, its live descendants and the
    children it has waited for (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry)] = (int(fields[1]), fields)
    if pid not in stats:
        return None
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        fields = stats[current][1]
        total += sum(int(v) for v in fields[11:15])
        todo.extend(p for p, (parent, _) in stats.items() if parent == current)
    return total / tick


def run_and_report(api, token, clients, seconds, max_requests, parts=None, video=None):
    session_ids = _seed(api, token)
    # A short warm-up (first imports, connections), not counted.
    run(api, token, session_ids, min(clients, 5), 2.0, 200)
    analyses = None
    if video is not None:
        analyses = Analyses(api, token, video)
        analyses.start()
        if not analyses.working.wait(120) or analyses.error:
            raise SystemExit(f"the video analysis did not start: {analyses.error}")
    parts = parts or {}
    before = {name: _cpu_seconds(pid) for name, pid in parts.items()}
    own_before = sum(os.times()[:4])
    latencies, errors, elapsed = run(api, token, session_ids, clients, seconds, max_requests)
    own = sum(os.times()[:4]) - own_before
    after = {name: _cpu_seconds(pid) for name, pid in parts.items()}
    if analyses is not None:
        busy = analyses.current is not None and analyses.error is None
        analyses.done()
        print(f"while analysing: {analyses.finished} analyses finished during the run "
              f"({analyses.failed} failed), one in progress throughout: "
              f"{'yes' if busy else 'no: ' + str(analyses.error)}")
    report(latencies, errors, elapsed, clients)
    if latencies:
        # CPU each process spent per request: what the figures would be on idle cores.
        per = {name: 1000 * (after[name] - before[name]) / len(latencies) for name in parts
               if before[name] is not None and after[name] is not None}
        if per:
            busiest = max(per[n] for n in ("api", "moto") if n in per)
            print("CPU ms per request: " + ", ".join(f"{n} {v:.1f}" for n, v in per.items())
                  + f"; this bench (clients, stack output) {1000 * own / len(latencies):.1f}")
            print(f"at most {1000 / busiest:.0f} requests/s with a free core each for the "
                  "api and moto (each one Python process); "
                  f"all of it: {sum(per.values()) + 1000 * own / len(latencies):.1f} CPU ms "
                  "per request")
    return errors


if __name__ == "__main__":
    sys.exit(main())
