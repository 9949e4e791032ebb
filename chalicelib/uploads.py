"""Direct browser uploads to S3, and checking what actually arrived.

Files never pass through the API: the server answers a presigned POST whose
policy fixes the key, the content type and the size range; the browser sends
the file straight to the private bucket. moto (and any client that ignores
the policy) does not enforce those conditions, so :meth:`Uploads.inspect`
checks the stored object again (size, declared type, magic bytes) before it
is used.
"""
import dataclasses

from botocore.exceptions import ClientError

#: Content types we accept, with the file extension keys get.
PHOTO_TYPES = {"image/jpeg": "jpg", "image/png": "png"}
#: Videos: what phones, cameras and screen recorders write. Rekognition reads H.264
#: in MP4/MOV; anything else is converted first (see chalicelib.conversion).
VIDEO_TYPES = {"video/mp4": "mp4", "video/quicktime": "mov", "video/x-msvideo": "avi",
               "video/webm": "webm", "video/x-matroska": "mkv"}


def _kinds(extensions):
    """``"an AVI, MOV or MP4"``, ``"a JPG or PNG"``: the types, with an article."""
    names = sorted({e.upper() for e in extensions})
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    # Letters read with a vowel sound take "an": an AVI, an MP4, an SVG.
    return f"{'an' if listed[0] in 'AEFHILMNORSX' else 'a'} {listed}"


def size_words(count):
    """Bytes in the units limits are set in: 5 MiB reads "5 MB" (as on the site)."""
    for unit, factor in (("GB", 1024 ** 3), ("MB", 1024 ** 2), ("KB", 1024)):
        if count >= factor:
            return f"{count / factor:.1f}".removesuffix(".0") + f" {unit}"
    return f"{count} bytes"


_TYPE_OF_EXTENSION = {ext: kind for types in (PHOTO_TYPES, VIDEO_TYPES)
                      for kind, ext in types.items()}


def type_for_key(key):
    """The content type a key's extension stands for (never text; a stranger is binary)."""
    return _TYPE_OF_EXTENSION.get(key.rsplit(".", 1)[-1].lower(), "application/octet-stream")


class UploadProblem(ValueError):
    """The stored object is missing, too big, or not what it claims to be."""


def sniff_type(head):
    """The content type the first bytes of a file reveal, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video/x-msvideo"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return "video/quicktime" if brand == b"qt  " else "video/mp4"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "video/quicktime"  # QuickTime files without an ftyp box
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: the DocType says which
        return "video/webm" if b"webm" in head[:64] else "video/x-matroska"
    return None


#: Types that are the same container (ISO base media): the brand decides the name only.
_SAME_KIND = {"video/mp4": "iso-media", "video/quicktime": "iso-media"}


def _same_type(declared, sniffed):
    declared = (declared or "").split(";")[0].strip().lower()
    return declared == sniffed or (declared in _SAME_KIND
                                   and _SAME_KIND[declared] == _SAME_KIND.get(sniffed))


@dataclasses.dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    content_type: str  # sniffed from the bytes, not the declared header
    etag: str = ""
    version_id: str = ""


class Uploads:
    def __init__(self, s3_client, bucket):
        self._s3 = s3_client
        self.bucket = bucket

    def presigned_post(self, key, content_type, max_bytes, expires_in=300):
        """A presigned POST for exactly ``key``, ``content_type``, 1..max_bytes."""
        post = self._s3.generate_presigned_post(
            Bucket=self.bucket, Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type},
                        ["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_in)
        return {"url": post["url"], "fields": post["fields"]}

    def presigned_get(self, key, expires_in=300, content_type=None):
        """A short-lived link to a private object (photos in the browser).

        The answer's Content-Type is fixed (from the key's extension unless
        given) and the object is shown inline as a file, whatever type was
        stored with it: a file is never served as HTML. (S3 cannot add
        ``X-Content-Type-Options: nosniff`` to an object; with a fixed image
        or video type that matches the checked bytes there is nothing to sniff.)"""
        content_type = content_type or type_for_key(key)
        extension = key.rsplit(".", 1)[-1] if "." in key else "bin"
        return self._s3.generate_presigned_url(
            "get_object", Params={
                "Bucket": self.bucket, "Key": key,
                "ResponseContentType": content_type,
                "ResponseContentDisposition": f'inline; filename="file.{extension}"',
                "ResponseCacheControl": "private, max-age=300"},
            ExpiresIn=expires_in)

    def inspect(self, key, allowed_types, max_bytes):
        """Check a stored object; :class:`UploadProblem` says what is wrong."""
        try:
            head = self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                raise UploadProblem("The file was not uploaded (nothing is stored under "
                                    "that key). Upload it again.")
            raise
        size = head["ContentLength"]
        if size == 0:
            raise UploadProblem("The uploaded file is empty.")
        if size > max_bytes:
            raise UploadProblem(f"The file is {size_words(size)}; the limit is {size_words(max_bytes)}.")
        first = self._s3.get_object(Bucket=self.bucket, Key=key,
                                    Range="bytes=0-31")["Body"].read()
        sniffed = sniff_type(first)
        if sniffed not in allowed_types:
            raise UploadProblem(f"The file is not {_kinds(allowed_types.values())} file (its "
                                "content does not match). Choose a file of one of those "
                                "types.")
        declared = head.get("ContentType")
        if not _same_type(declared, sniffed):
            # Stored as one type, holding another: it would be served as the first.
            raise UploadProblem(f"The file was sent as {declared or 'no type'} but holds "
                                f"{_kinds([allowed_types[sniffed]])} file. Choose the file "
                                "again and upload it.")
        return StoredObject(key=key, size=size, content_type=sniffed,
                            etag=head.get("ETag", ""), version_id=head.get("VersionId") or "")

    def read(self, key):
        return self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def reader(self, key):
        """``read(offset, length)`` of the object by ranged GETs (headers of a big video)."""
        def read(offset, length):
            end = offset + max(length, 1) - 1
            return self._s3.get_object(Bucket=self.bucket, Key=key,
                                       Range=f"bytes={offset}-{end}")["Body"].read()
        return read

    def copy(self, source_key, key, content_type=None):
        """Copy an object within the bucket, server-side (the bytes never pass here);
        with ``content_type`` the copy is stored with that type (the checked one)."""
        extra = {"ContentType": content_type, "MetadataDirective": "REPLACE"} \
            if content_type else {}
        self._s3.copy_object(Bucket=self.bucket, Key=key,
                             CopySource={"Bucket": self.bucket, "Key": source_key}, **extra)

    def version(self, key):
        """(ETag, VersionId or "") of the stored object, or None if there is none."""
        try:
            head = self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return head.get("ETag", ""), head.get("VersionId") or ""

    def delete(self, keys):
        """Delete objects (batched, 1000 a call); missing keys are fine."""
        keys = list(keys)
        for start in range(0, len(keys), 1000):
            chunk = keys[start:start + 1000]
            if chunk:
                self._s3.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": k} for k in chunk], "Quiet": True})

    def delete_prefix(self, prefix):
        """Delete every object under ``prefix`` (all pages)."""
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            self.delete(obj["Key"] for obj in page.get("Contents", []))
