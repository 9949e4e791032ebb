"""Making one AWS call of a request fail, as AWS would, to test what is undone."""
from botocore.exceptions import ClientError


def error_of(response):
    return response.json_body["error"]


def fail_once(client, event, code="InternalError"):
    """Make the next call of ``event`` on ``client`` fail, as AWS would."""
    def handler(**kwargs):
        client.meta.events.unregister(event, handler)
        raise ClientError({"Error": {"Code": code, "Message": "injected failure"}},
                          event.rsplit(".", 1)[-1])
    client.meta.events.register(event, handler)


# Each step of a registration, and how to make exactly that step fail.
FAILURES = {
    "inspect the upload": ("s3", "before-call.s3.HeadObject"),
    "detect faces": ("rekognition", "DetectFaces"),
    "search the collection": ("rekognition", "SearchFacesByImage"),
    "index the face": ("rekognition", "IndexFaces"),
    "copy the photo": ("s3", "before-call.s3.CopyObject"),
    "delete the upload": ("s3", "before-call.s3.DeleteObjects"),
    "write the record": ("dynamodb", "before-call.dynamodb.PutItem"),
}

# Steps of a photo change (add or replace) that a registration does not have.
PHOTO_CHANGE_FAILURES = {
    "index the face": FAILURES["index the face"],
    "copy the photo": FAILURES["copy the photo"],
    "update the record": ("dynamodb", "before-call.dynamodb.UpdateItem"),
}


def fail_step(services, fake_rekognition, failure):
    """Make one step (a ``(kind, target)`` of the tables above) fail once."""
    kind, target = failure
    if kind == "rekognition":
        fake_rekognition.fail[target] = "InternalServerError"
    elif kind == "s3":
        fail_once(services.clients.client("s3"), target)
    else:
        fail_once(services.clients.table(services.settings.students_table).meta.client,
                  target)
