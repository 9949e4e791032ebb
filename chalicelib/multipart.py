"""Resumable video uploads: S3 multipart uploads the browser sends part by part.

A lecture recording is large (0.5-4 GB); one dropped connection must not
start it over. The browser asks for a multipart upload of a known size, gets
presigned URLs for the parts it is about to send (PUT straight to the private
bucket), and asks the API to complete it. After a network drop or a page
reload it asks which parts S3 already has and sends only the others.

Invariants:

* Only a session AWAITING_UPLOAD gets an upload or signed part URLs, and only
  for its current ``video_key``: the session item holds the one live upload
  (``multipart``: upload id, key, size, part size), written with a condition
  on the status and the attempt, so a retry or a finished session never
  accepts parts. Starting another upload aborts the previous one.
* Parts are :data:`MIN_PART_BYTES`..:data:`MAX_PART_BYTES` (S3 wants at least
  5 MiB for all but the last); the part size is fixed at the start, so the
  part numbers a file needs are known and signing refuses any other.
* Completion trusts S3, not the browser: the parts S3 lists must be exactly
  1..N with the expected sizes (and the ETags the browser saw, when given).
  S3 then announces the object as for any upload and the usual S3 event
  checks and processes it. Abandoned uploads are aborted by the bucket's
  lifecycle rule (see ops/provision.py).
"""
import math
import re

from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError

from chalicelib.dynamo import conditional_update, is_conditional_failure
from chalicelib.errors import Conflict, InvalidInput, NotFound, TooLarge, UnknownSession, WrongState
from chalicelib.sessions import SESSION_ID_PATTERN
from chalicelib.statuses import SessionStatus
from chalicelib.uploads import VIDEO_TYPES, size_words

MIB = 1024 * 1024
MIN_PART_BYTES = 8 * MIB
MAX_PART_BYTES = 64 * MIB
#: S3's limit on the number of parts of one upload.
MAX_PARTS = 10_000
#: Part URLs one request may ask for (a browser asks a few at a time).
MAX_URLS_PER_REQUEST = 50
#: A part URL stays usable this long (a slow part on a slow link).
PART_URL_EXPIRES_IN = 3600

_TYPE_OF_EXTENSION = {extension: content_type for content_type, extension in VIDEO_TYPES.items()}


def part_size_for(size):
    """The part size for a file of ``size`` bytes: 8 MiB, or more (whole MiB) so
    that the parts stay within S3's 10,000; None if even 64 MiB parts are too few."""
    needed = max(MIN_PART_BYTES, math.ceil(size / MAX_PARTS / MIB) * MIB)
    return needed if needed <= MAX_PART_BYTES else None


def part_count(size, part_size):
    return max(1, math.ceil(size / part_size))


def expected_part_size(number, size, part_size):
    """How many bytes part ``number`` (1-based) of the file holds."""
    return min(part_size, size - (number - 1) * part_size)


class MultipartUploads:
    """The multipart upload of each session's video (see the module docstring)."""

    def __init__(self, *, sessions_table, s3_client, bucket, max_bytes):
        self._table = sessions_table
        self._s3 = s3_client
        self.bucket = bucket
        self.max_bytes = max_bytes

    # -- API ----------------------------------------------------------------------
    def start(self, session_id, size):
        """A new upload of ``size`` bytes for the session's video; any earlier one
        of the session is aborted. Answers the upload's description."""
        item = self._awaiting(session_id)
        if size > self.max_bytes:
            raise TooLarge(
                f"The video is {size_words(size)}; the limit is {size_words(self.max_bytes)}. "
                "Trim or compress it first.", code="video_too_large", details={"field": "size"})
        part_size = part_size_for(size)
        if part_size is None:
            raise TooLarge("The video is too large to upload.", code="video_too_large",
                           details={"field": "size"})
        key = item["video_key"]
        content_type = _TYPE_OF_EXTENSION.get(key.rsplit(".", 1)[-1], "application/octet-stream")
        upload_id = self._s3.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=content_type)["UploadId"]
        upload = {"upload_id": upload_id, "key": key, "size": size, "part_size": part_size}
        if not self._record(session_id, item, upload):
            self._abort(key, upload_id)
            raise self._not_awaiting(self._table.get_item(
                Key={"session_id": session_id}, ConsistentRead=True).get("Item"))
        previous = item.get("multipart")
        if previous and previous.get("upload_id") != upload_id:
            self._abort(previous["key"], previous["upload_id"])
        return self._describe(upload, parts=[])

    def current(self, session_id):
        """The session's unfinished upload with the parts S3 holds (404 if none)."""
        item = self._awaiting(session_id)
        upload = self._live_upload(item)
        if upload is None:
            raise NotFound("This session has no unfinished upload.", code="no_upload")
        try:
            parts = self._listed_parts(upload)
        except _UploadGone:
            raise NotFound("This session has no unfinished upload.", code="no_upload")
        return self._describe(upload, parts)

    def sign_parts(self, session_id, upload_id, part_numbers):
        """Presigned PUT URLs, ``{"1": url, ...}``, for parts of the current upload."""
        upload = self._require_upload(session_id, upload_id)
        count = part_count(upload["size"], upload["part_size"])
        wrong = [n for n in part_numbers if not 1 <= n <= count]
        if wrong:
            raise InvalidInput(f"This upload has parts 1 to {count}; {wrong[0]} is not one of them.",
                             code="invalid_field", details={"field": "part_numbers"})
        return {str(n): self._s3.generate_presigned_url(
            "upload_part", Params={"Bucket": self.bucket, "Key": upload["key"],
                                   "UploadId": upload_id, "PartNumber": n},
            ExpiresIn=PART_URL_EXPIRES_IN) for n in part_numbers}

    def complete(self, session_id, upload_id, etags):
        """Join the parts into the video. ``etags`` ({number: etag}, may be empty)
        are what the browser saw; a mismatch or a missing part is a 409."""
        upload = self._require_upload(session_id, upload_id)
        try:
            parts = {p["part_number"]: p for p in self._listed_parts(upload)}
        except _UploadGone:
            raise Conflict("The upload is no longer there; start it again.", code="upload_gone")
        count = part_count(upload["size"], upload["part_size"])
        missing = [n for n in range(1, count + 1) if n not in parts]
        if missing:
            raise Conflict(f"{len(missing)} of {count} parts have not arrived; send them first.",
                           code="parts_missing", details={"missing": missing[:100]})
        for number in range(1, count + 1):
            part = parts[number]
            if part["size"] != expected_part_size(number, upload["size"], upload["part_size"]):
                raise Conflict(f"Part {number} does not have the expected size; send it again.",
                               code="part_mismatch", details={"part_number": number})
            if number in etags and _plain(etags[number]) != _plain(part["etag"]):
                raise Conflict(f"Part {number} is not the one that was sent; send it again.",
                               code="part_mismatch", details={"part_number": number})
        self._s3.complete_multipart_upload(
            Bucket=self.bucket, Key=upload["key"], UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": parts[n]["etag"]}
                                       for n in range(1, count + 1)]})
        self._forget(session_id, upload_id)
        return {"key": upload["key"], "size": upload["size"]}

    def abort(self, session_id):
        """Give up the session's unfinished upload, if it has one."""
        item = self._require_session(session_id)
        upload = item.get("multipart")
        if upload:
            self._abort(upload["key"], upload["upload_id"])
            self._forget(session_id, upload["upload_id"])

    # -- steps --------------------------------------------------------------------
    def _require_session(self, session_id):
        item = None
        if re.fullmatch(SESSION_ID_PATTERN, session_id):
            item = self._table.get_item(Key={"session_id": session_id},
                                        ConsistentRead=True).get("Item")
        if item is None:
            raise UnknownSession("There is no such session (it may have been deleted).")
        return item

    def _awaiting(self, session_id):
        item = self._require_session(session_id)
        if item.get("status") != SessionStatus.AWAITING_UPLOAD:
            raise self._not_awaiting(item)
        return item

    @staticmethod
    def _not_awaiting(item):
        status = SessionStatus(item["status"]).words() if item else "deleted"
        return WrongState(f"A video can be uploaded only while the session awaits its upload; "
                          f"this one is {status}.", code="upload_not_allowed")

    def _live_upload(self, item):
        upload = item.get("multipart")
        if not upload or upload.get("key") != item.get("video_key"):
            return None
        return {"upload_id": upload["upload_id"], "key": upload["key"],
                "size": int(upload["size"]), "part_size": int(upload["part_size"])}

    def _require_upload(self, session_id, upload_id):
        upload = self._live_upload(self._awaiting(session_id))
        if upload is None or upload["upload_id"] != upload_id:
            raise WrongState("This upload is not the session's current one; start it again.",
                             code="upload_replaced")
        return upload

    def _record(self, session_id, item, upload):
        """Store ``upload`` as the session's live one, if it still awaits this file."""
        return conditional_update(
            self._table, {"session_id": session_id}, {"multipart": upload},
            Attr("status").eq(SessionStatus.AWAITING_UPLOAD)
            & Attr("attempt").eq(item.get("attempt", 0))
            & Attr("video_key").eq(item["video_key"])) is not None

    def _forget(self, session_id, upload_id):
        """Drop the session's record of ``upload_id`` (nothing if another replaced it)."""
        try:
            self._table.update_item(
                Key={"session_id": session_id}, UpdateExpression="REMOVE #m",
                ConditionExpression=Attr("multipart.upload_id").eq(upload_id),
                ExpressionAttributeNames={"#m": "multipart"})
        except ClientError as error:
            if not is_conditional_failure(error):
                raise

    def _listed_parts(self, upload):
        """Every part S3 holds for ``upload`` (all pages), by number."""
        parts, marker = [], 0
        while True:
            try:
                page = self._s3.list_parts(Bucket=self.bucket, Key=upload["key"],
                                           UploadId=upload["upload_id"], PartNumberMarker=marker)
            except ClientError as error:
                if error.response["Error"]["Code"] in ("NoSuchUpload", "404"):
                    raise _UploadGone()
                raise
            parts += [{"part_number": p["PartNumber"], "size": p["Size"], "etag": p["ETag"]}
                      for p in page.get("Parts", [])]
            if not page.get("IsTruncated"):
                return parts
            marker = page["NextPartNumberMarker"]

    def _abort(self, key, upload_id):
        try:
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("NoSuchUpload", "404"):
                raise

    def _describe(self, upload, parts):
        return {"upload_id": upload["upload_id"], "size": upload["size"],
                "part_size": upload["part_size"],
                "part_count": part_count(upload["size"], upload["part_size"]),
                "parts": sorted(parts, key=lambda p: p["part_number"]),
                "max_urls": MAX_URLS_PER_REQUEST}


class _UploadGone(Exception):
    """S3 no longer knows the upload (completed, aborted, or expired by lifecycle)."""


def _plain(etag):
    return str(etag).strip().strip('"').lower()
