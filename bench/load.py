"""Load on the one-machine stack: many clients at once, latency and throughput.

    .venv/bin/python bench/load.py [--clients 50] [--seconds 20] [--max-requests 20000]
                                   [--api-url http://127.0.0.1:8001 --email E --password P]

Without ``--api-url`` it starts its own stack (free ports on 127.0.0.1, a
temporary data dir) and signs in as the first admin. Every client is a thread
with its own keep-alive connection, sending what the site sends while a
teacher works: the session list, a session's detail, the roster, who am I.
Bounded: it stops after ``--seconds`` (at most 120) or ``--max-requests``,
and only ever talks to 127.0.0.1.

Prints the requests, errors (any non-2xx answer or connection failure),
requests/s, p50/p95/p99 latency, the CPUs and the load average (the machine
may be shared: read the figures with it).
"""
import argparse
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

    def client(n):
        session = requests.Session()
        session.headers["Authorization"] = "Bearer " + token
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
                answer = session.get(api + path, timeout=30)
                ok = 200 <= answer.status_code < 300
                what = answer.status_code
            except requests.RequestException as error:
                ok, what = False, type(error).__name__
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
    parser.add_argument("--api-url")
    parser.add_argument("--email")
    parser.add_argument("--password")
    args = parser.parse_args(argv)
    seconds = min(args.seconds, 120.0)
    clients = max(1, min(args.clients, 200))
    if args.api_url:
        api = _local_only(args.api_url)
        token = _sign_in(api, args.email, args.password)
        run_and_report(api, token, clients, seconds, args.max_requests)
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
                     if part.name in ("api", "moto")}
            run_and_report(api, token, clients, seconds, args.max_requests, parts)
        finally:
            stack.stop()
    return 0


def _cpu_seconds(pid):
    """User + system CPU time of a process so far (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_and_report(api, token, clients, seconds, max_requests, parts=None):
    session_ids = _seed(api, token)
    # A short warm-up (first imports, connections), not counted.
    run(api, token, session_ids, min(clients, 5), 2.0, 200)
    parts = parts or {}
    before = {name: _cpu_seconds(pid) for name, pid in parts.items()}
    latencies, errors, elapsed = run(api, token, session_ids, clients, seconds, max_requests)
    report(latencies, errors, elapsed, clients)
    if latencies and parts:
        # CPU each part spent per request: what the figures would be on idle cores.
        used = {name: _cpu_seconds(pid) - before[name] for name, pid in parts.items()
                if before[name] is not None and _cpu_seconds(pid) is not None}
        per = {name: 1000 * cpu / len(latencies) for name, cpu in used.items()}
        print("CPU ms per request: " + ", ".join(f"{n} {v:.1f}" for n, v in per.items())
              + f"; at most {1000 / max(per.values()):.0f} requests/s with a free core "
                "per part (each part is one Python process)")


if __name__ == "__main__":
    sys.exit(main())
