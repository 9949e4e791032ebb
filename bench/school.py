"""A whole school in moto: how many DynamoDB requests each main page makes.

    .venv/bin/python bench/school.py [--people 20000] [--classes 600]
        [--sessions 12000] [--row-classes 12] [--seed 7]

Seeds an in-process moto with the people, the classes (30 to 300 people
each, five per teacher), their enrolments and sessions, and attendance rows,
all with BatchWriteItem; then calls the API (chalice's test client, the real
handlers) for the main pages and prints, per page, the DynamoDB requests by
operation and the time taken. It exits non-zero if any page scans.

Every class's sessions are seeded; attendance rows are written for the
sessions of ``--row-classes`` classes (the measured ones among them; 0 = all
of them). Rows of other classes change no page's request count (every read
is by key), only moto's seeding time: moto writes about 750 items a second
here, so all ~2 million rows would take most of an hour.

Requests are counted with botocore's ``before-call`` event on the DynamoDB
client. Times are moto's in one process on this machine, not DynamoDB's:
compare them between pages and runs, not with a real table.
"""
import argparse
import collections
import datetime
import json
import os
import pathlib
import random
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIRST = ["Ada", "Grace", "Alan", "Émile", "Zoë", "Li", "Amara", "Jonas", "Priya", "Mateo",
         "Sofia", "Kwame", "Hana", "Omar", "Ines", "Yuki", "Noah", "Leila", "Ivan", "Chloé"]
LAST = ["Lovelace", "Hopper", "Turing", "Zola", "Okafor", "Nakamura", "García", "Müller",
        "Singh", "Kowalski", "Haddad", "O'Brien", "Andersen", "Rossi", "Dubois", "Kim"]
TERM_START = datetime.date(2026, 9, 7)


def environment():
    for key in list(os.environ):
        if key.startswith("AWS_ENDPOINT_URL"):
            del os.environ[key]
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")
    from ops.stage_config import stage_environment
    for key, value in stage_environment("dev").items():
        os.environ[key] = value


class Counter:
    """DynamoDB requests by operation, through botocore's event hooks."""

    def __init__(self, client):
        self.calls = collections.Counter()
        client.meta.events.register("before-call.dynamodb.*", self._count)

    def _count(self, model, **_):
        self.calls[model.name] += 1

    def reset(self):
        self.calls.clear()


def seed(services, args, rng, log):
    from chalicelib import names
    from chalicelib.dynamo import batch_put
    from chalicelib.sessions import index_attributes as session_keys
    from chalicelib.students import index_attributes as student_keys

    table = services.clients.table
    s = services.settings
    started = time.perf_counter()
    people = []
    for n in range(args.people):
        item = {"student_id": f"P{n:05d}", "full_name": f"{rng.choice(FIRST)} {rng.choice(LAST)} {n}",
                "photo_keys": [], "face_ids": [], "created_at": "2026-08-01T00:00:00+00:00"}
        people.append(dict(item, **student_keys(item)))
    batch_put(table(s.students_table), people)
    log(f"{len(people)} people", started)

    teachers = [f"teacher{t:03d}@school.example" for t in range(max(1, args.classes // 5))]
    for email in teachers:
        services.users.add(email, "bench password 1", "teacher")
    services.users.add("admin@school.example", "bench password 1", "admin")
    classes, members, rosters = [], [], {}
    for c in range(args.classes):
        class_id = f"{c:032x}"
        size = rng.randint(30, 300)
        roster = rng.sample(people, size)
        rosters[class_id] = roster
        teacher = teachers[c % len(teachers)]
        name = f"Class {c:03d}"
        classes.append({"class_id": class_id, "name": name, "term": "Autumn 2026",
                        "teachers": [teacher], "late_threshold_minutes": 10, "archived": False,
                        "enrolled": size, "listed": "class",
                        "name_key": names.sort_key(name, class_id),
                        "created_at": "2026-08-01T00:00:00+00:00"})
        members.append({"class_id": class_id, "member": f"teacher#{teacher}"})
        members.extend({"class_id": class_id, "member": f"student#{p['student_id']}",
                        "student_id": p["student_id"], "full_name": p["full_name"],
                        "name_key": p["name_key"]} for p in roster)
    batch_put(table(s.classes_table), classes)
    batch_put(table(s.members_table), members)
    log(f"{len(classes)} classes, {len(members)} memberships", started)

    per_class = max(1, args.sessions // args.classes)
    sessions, by_class = [], collections.defaultdict(list)
    for c, klass in enumerate(classes):
        for week in range(per_class):
            day = TERM_START + datetime.timedelta(days=7 * week + c % 5)
            session_id = f"{c:016x}{week:016x}"
            item = {"session_id": session_id, "title": f"{klass['name']} week {week + 1}",
                    "date": day.isoformat(), "created_at": f"{day.isoformat()}T09:00:00+00:00",
                    "status": "COMPLETED", "class_id": klass["class_id"], "attempt": 0,
                    "video_key": f"videos/{session_id}/video.mp4", "late_threshold_minutes": 10,
                    "counts": {"roster": len(rosters[klass["class_id"]])}}
            sessions.append(dict(item, **session_keys(item)))
            by_class[klass["class_id"]].append(session_id)
    batch_put(table(s.sessions_table), sessions)
    log(f"{len(sessions)} sessions", started)

    with_rows = classes if not args.row_classes else classes[:args.row_classes]
    rows = []
    for klass in with_rows:
        for session_id in by_class[klass["class_id"]]:
            for person in rosters[klass["class_id"]]:
                status = rng.choices(["PRESENT", "LATE", "ABSENT", "EXCUSED"], [80, 8, 10, 2])[0]
                rows.append({"session_id": session_id, "student_id": person["student_id"],
                             "full_name": person["full_name"], "status": status,
                             "auto_status": "ABSENT" if status == "EXCUSED" else status,
                             "source": "manual" if status == "EXCUSED" else "auto",
                             "sightings": 0 if status == "ABSENT" else 4, "seen_ms": []})
    batch_put(table(s.attendance_table), rows, overwrite_by_pkeys=["session_id", "student_id"])
    log(f"{len(rows)} attendance rows ({len(with_rows)} classes' sessions)", started)
    return {"classes": classes, "rosters": rosters, "by_class": by_class, "teachers": teachers,
            "with_rows": with_rows}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--classes", type=int, default=600)
    parser.add_argument("--sessions", type=int, default=12_000)
    parser.add_argument("--row-classes", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    environment()

    from chalice.test import Client
    from moto import mock_aws

    import app as app_module
    from chalicelib.clients import ClientFactory
    from chalicelib.schema import table_specs
    from chalicelib.services import Services
    from chalicelib.settings import load_settings
    from ops.provision import Provisioner

    def log(what, since):
        print(f"  seeded {what} ({time.perf_counter() - since:.0f} s)", flush=True)

    import logging
    rng = random.Random(args.seed)
    with mock_aws():
        settings = load_settings()
        clients = ClientFactory(region=settings.region)
        provisioner = Provisioner(settings, clients)
        for name, spec in table_specs(settings).items():
            provisioner.ensure_table(name, spec)
        provisioner.ensure_token_secret(settings.token_secret_parameter)
        services = Services(settings=settings, clients=clients)
        services.logger.setLevel(logging.WARNING)  # one JSON line a request otherwise
        app_module.reset_services(services)
        print(f"seeding moto: {args.people} people, {args.classes} classes of 30-300, "
              f"{args.sessions} sessions", flush=True)
        world = seed(services, args, rng, log)
        counter = Counter(clients.client("dynamodb"))
        # Tables share one client; a Table resource's own client is counted too.
        for name in table_specs(settings):
            clients.table(name).meta.client.meta.events.register(
                "before-call.dynamodb.*", counter._count)

        with Client(app_module.app, stage_name="dev", project_dir=str(ROOT)) as api:
            def token(email):
                answer = api.http.post("/auth/login", headers={"Content-Type": "application/json"},
                                       body=json.dumps({"email": email,
                                                        "password": "bench password 1"}))
                return {"Authorization": "Bearer " + answer.json_body["token"]}

            # The measured class: the largest of those with rows; its teacher; one of its people.
            klass = max(world["with_rows"], key=lambda c: c["enrolled"])
            teacher = token(klass["teachers"][0])
            admin = token("admin@school.example")
            person = world["rosters"][klass["class_id"]][0]
            session_id = world["by_class"][klass["class_id"]][3]
            cid = klass["class_id"]
            term = "from=2026-09-01&to=2027-01-31"
            pages = [
                ("a teacher's classes", "/classes", teacher),
                ("a teacher's sessions (first page)", "/sessions", teacher),
                (f"a class grid for a term ({klass['enrolled']} people)",
                 f"/classes/{cid}/attendance?{term}", teacher),
                ("the grid as CSV", f"/classes/{cid}/attendance.csv?{term}", teacher),
                ("a class roster (first page)", f"/classes/{cid}/students", teacher),
                (f"a session ({klass['enrolled']} rows)", f"/sessions/{session_id}", teacher),
                ("a person's history (teacher)", f"/students/{person['student_id']}/attendance",
                 teacher),
                ("a person's history (admin)", f"/students/{person['student_id']}/attendance",
                 admin),
                ("people search, admin (?q=ada)", "/students?q=ada", admin),
                ("people search, teacher (?q=ada)", "/students?q=ada", teacher),
                ("people list, admin (first page)", "/students", admin),
                ("all sessions, admin (first page)", "/sessions", admin),
            ]
            print()
            print(f"{'page':44} {'status':>6} {'requests':>8} {'ms':>8}  by operation")
            scanned = []
            for label, path, headers in pages:
                counter.reset()
                started = time.perf_counter()
                answer = api.http.get(path, headers=headers)
                elapsed = (time.perf_counter() - started) * 1000
                # Sign-in reads the user on every request; counted with the page.
                ops = ", ".join(f"{op} {n}" for op, n in sorted(counter.calls.items()))
                print(f"{label:44} {answer.status_code:>6} {sum(counter.calls.values()):>8} "
                      f"{elapsed:>8.0f}  {ops}", flush=True)
                if answer.status_code != 200:
                    scanned.append(f"{label}: HTTP {answer.status_code}")
                if counter.calls.get("Scan"):
                    scanned.append(f"{label}: {counter.calls['Scan']} Scan(s)")
        app_module.reset_services(None)
    if scanned:
        print("\nFAILED: " + "; ".join(scanned))
        return 1
    print("\nno page scanned a table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
