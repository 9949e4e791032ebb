"""Helpers for the evidence crops: the video's geometry, and driving the hand-off
from a completed face search to ``cut_evidence`` as Lambda's SQS event source does."""
from tests.fakes.drivers import create_session, s3_event, session_detail, sns_event, upload_video

#: The size of the generated evidence videos.
SIZE = (640, 360)


def ratio_box(ltrb, size=SIZE):
    """Pixel (l, t, r, b) -> the face search's (left, top, width, height) ratios."""
    l, t, r, b = ltrb
    return (l / size[0], t / size[1], (r - l) / size[0], (b - t) / size[1])


def evidence_messages(services):
    sqs = services.clients.client("sqs")
    url = sqs.get_queue_url(QueueName=services.settings.evidence_queue)["QueueUrl"]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    bodies = [m["Body"] for m in got.get("Messages", [])]
    for message in got.get("Messages", []):
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def deliver_evidence(api, services):
    """What Lambda's SQS event source does: hand the queued messages to cut_evidence."""
    bodies = evidence_messages(services)
    if bodies:
        api.lambda_.invoke("cut_evidence", api.events.generate_sqs_event(
            message_bodies=bodies, queue_name=services.settings.evidence_queue))
    return bodies


def complete(api, headers, services, fake, persons, video_bytes, **fields):
    fake.persons = list(persons)
    session = create_session(api, headers, **fields)["session"]
    upload_video(services, session, data=video_bytes)
    s3_event(api, services, session["video_key"])
    job_id = session_detail(api, headers, session["session_id"])["session"]["job_id"]
    sns_event(api, fake.message(job_id))
    return session["session_id"], job_id


class SearchAndFaces:
    """One Rekognition client of two fakes: the video face search (StartFaceSearch,
    GetFaceSearch) and the face collections (every other call)."""

    def __init__(self, search, faces):
        self.search, self.faces = search, faces

    def __getattr__(self, name):
        if name in ("start_face_search", "get_face_search"):
            return getattr(self.search, name)
        return getattr(self.faces, name)
