"""Figures for the one-machine stack: how long it takes to start and stop, and
what keeping moto's state on disk costs.

    .venv/bin/python bench/local_stack.py [--students 2000] [--video-mb 50]

1. Snapshot (local.stack.snapshot.StateStore, in process, moto's in-memory
   backends): a term's worth of data (students with photos, attendance rows,
   one video); time and size of the first snapshot (bodies written as blobs),
   of a later one (bodies already on disk), and of loading it back.
2. The whole stack (real processes on free ports, a temp data dir): first
   start (provisioning creates everything), stop, second start, stop.
"""
import argparse
import os
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))


def bench_snapshot(students, video_mb):
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")
    import boto3
    from moto import mock_aws

    from local.stack.snapshot import StateStore

    with mock_aws(), tempfile.TemporaryDirectory() as tmp:
        s3 = boto3.client("s3", region_name="us-east-1")
        ddb = boto3.resource("dynamodb", region_name="us-east-1")
        s3.create_bucket(Bucket="photos")
        table = ddb.create_table(
            TableName="attendance", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "session_id", "KeyType": "HASH"},
                       {"AttributeName": "student_id", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "session_id", "AttributeType": "S"},
                                  {"AttributeName": "student_id", "AttributeType": "S"}])
        photo = os.urandom(100_000)
        started = time.perf_counter()
        with table.batch_writer() as batch:
            for n in range(students):
                s3.put_object(Bucket="photos", Key=f"photos/{n}.jpg", Body=photo + n.to_bytes(4, "big"))
                for session in range(5):
                    batch.put_item(Item={"session_id": f"s{session}", "student_id": f"{n:06d}",
                                         "status": "PRESENT", "full_name": f"Student {n}",
                                         "seen_ms": list(range(0, 20_000, 500))})
        s3.put_object(Bucket="photos", Key="videos/class.mp4", Body=os.urandom(video_mb << 20))
        print(f"data: {students} photos of 100 kB, {students * 5} attendance rows, "
              f"one {video_mb} MB video (made in {time.perf_counter() - started:.1f} s)")

        store = StateStore(tmp, services=("s3", "dynamodb"))
        for label in ("first snapshot (writes every body)", "next snapshot (bodies on disk)"):
            started = time.perf_counter()
            payload = store.dump()
            dumped = time.perf_counter()
            store.write(payload)
            done = time.perf_counter()
            print(f"{label}: {done - started:.2f} s (pickle {dumped - started:.2f} s "
                  f"under the lock, write {done - dumped:.2f} s), snapshot "
                  f"{len(payload) / 1e6:.1f} MB")
        blobs = sum(p.stat().st_size for p in (pathlib.Path(tmp) / "blobs").iterdir())
        print(f"blobs on disk: {blobs / 1e6:.1f} MB")
        started = time.perf_counter()
        store.load()
        print(f"load: {time.perf_counter() - started:.2f} s")
        check = boto3.client("s3", region_name="us-east-1").get_object(
            Bucket="photos", Key=f"photos/{students - 1}.jpg")["Body"].read()
        assert check[-4:] == (students - 1).to_bytes(4, "big"), "a body did not come back"


def bench_stack():
    from tests.support.stack import make_stack

    with tempfile.TemporaryDirectory() as tmp:
        for label in ("first start (provisions everything)", "second start (state loaded)"):
            stack = make_stack(pathlib.Path(tmp) / "data")
            started = time.perf_counter()
            stack.start()
            up = time.perf_counter()
            stack.stop()
            down = time.perf_counter()
            print(f"{label}: ready in {up - started:.1f} s, stopped in {down - up:.1f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--video-mb", type=int, default=50)
    args = parser.parse_args()
    print("== moto state snapshot")
    bench_snapshot(args.students, args.video_mb)
    print("== whole stack")
    bench_stack()


if __name__ == "__main__":
    main()
