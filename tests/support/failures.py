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
