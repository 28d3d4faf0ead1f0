"""S3: the bucket as cya uses it, over boto3 exactly as AWS (or any S3 endpoint) is spoken to.

* A bag goes up as a multipart upload fed by a stream (``StreamingUpload``): no
  copy on disk, parts of ``part_size`` sent ``in_flight`` at a time (memory is
  about ``(in_flight + 1) * part_size``), each with its SHA-256 as an S3
  additional checksum, the storage class set at create time.
* An upload is done only when S3 confirmed it: after ``CompleteMultipartUpload``
  cya HEADs the key and compares size, storage class, the composite checksum of
  its own part digests, and a random nonce it put in the metadata at create time
  (so a Complete whose response was lost is told apart from someone else's object).
* Payloads go unsigned (``payload_signing_enabled`` off): every part carries its
  SHA-256 checksum, and botocore would otherwise hash each body again over http.
* Every botocore error becomes one ArchiveError line naming the bucket and what to do.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
)

from cya.archive.layout import PREFIXES
from cya.config import Archive
from cya.errors import ArchiveError

log = logging.getLogger("cya")

ARCHIVE_CLASSES = ("DEEP_ARCHIVE", "GLACIER")  # objects that must be thawed before a GET
MISSING_KEY = ("404", "NoSuchKey", "NotFound")


def missing_bucket(bucket: str) -> ArchiveError:
    return ArchiveError(f"bucket {bucket} does not exist", "create it, then run: cya archive setup")


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


@contextmanager
def remote_errors(bucket: str, doing: str) -> Iterator[None]:
    """Turn botocore's exceptions into one ArchiveError line."""
    try:
        yield
    except NoCredentialsError:
        raise ArchiveError(f"no AWS credentials to {doing}",
                           "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                           "(cya reads credentials only from boto3's usual chain)") from None
    except EndpointConnectionError as error:
        raise ArchiveError(f"cannot reach the bucket {bucket} to {doing}: {error}",
                           "check archive.endpoint_url and the network; nothing remote "
                           "was changed") from None
    except ClientError as error:
        code = error_code(error)
        message = error.response.get("Error", {}).get("Message", "") or code
        if code == "NoSuchBucket":
            raise missing_bucket(bucket) from None
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
            raise ArchiveError(f"access to bucket {bucket} denied ({code}) while trying to "
                               f"{doing}", "check the credentials and the bucket policy "
                               "(contrib/iam-policy-daily.json; setup, prune and restore: "
                               "contrib/iam-policy-admin.json)") from None
        raise ArchiveError(f"S3 said {code}: {message} while trying to {doing} "
                           f"(bucket {bucket})", "run again; if it persists, run: "
                           "cya archive verify") from None
    except BotoCoreError as error:
        raise ArchiveError(f"S3 request failed while trying to {doing} (bucket {bucket}): "
                           f"{error}", "check the network and run again") from None


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


@dataclass(frozen=True)
class Uploaded:
    key: str
    size: int
    checksum: str  # what S3 reports: the composite SHA-256 of the parts, "...-N"
    parts: int


class Remote:
    """One bucket and prefix, with the client all of cya's S3 calls go through."""

    def __init__(self, archive: Archive, in_flight: int = 4):
        self.bucket = archive.bucket
        self.prefix = archive.prefix.strip("/") + "/" if archive.prefix.strip("/") else ""
        self.storage_class = archive.storage_class
        self.in_flight = in_flight
        self.client = boto3.client(
            "s3", endpoint_url=archive.endpoint_url or None, region_name=archive.region,
            config=Config(retries={"mode": "standard", "total_max_attempts": 5},
                          connect_timeout=10, read_timeout=120,
                          max_pool_connections=in_flight + 4,
                          s3={"payload_signing_enabled": False},
                          request_checksum_calculation="when_required",
                          response_checksum_validation="when_required"))

    def key(self, relative: str) -> str:
        return self.prefix + relative

    def relative(self, key: str) -> str:
        return key.removeprefix(self.prefix)

    def errors(self, doing: str):
        return remote_errors(self.bucket, doing)

    def check_bucket(self) -> None:
        """Raise ArchiveError unless the bucket exists and answers."""
        with self.errors("check the bucket"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as error:
                if error_code(error) == "404":  # HEAD answers without an error body
                    raise missing_bucket(self.bucket) from None
                raise

    def head(self, key: str) -> dict | None:
        """The object's HEAD (with its checksum), or None if there is none."""
        with self.errors(f"read {key}"):
            try:
                return self.client.head_object(Bucket=self.bucket, Key=key,
                                               ChecksumMode="ENABLED")
            except ClientError as error:
                if error_code(error) in MISSING_KEY:
                    return None
                raise

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        """Store a small object in Standard; return once S3 confirmed it."""
        with self.errors(f"write {key}"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data,
                                   ContentType=content_type, StorageClass="STANDARD",
                                   ChecksumSHA256=b64(hashlib.sha256(data).digest()))

    def get_bytes(self, key: str) -> bytes | None:
        """A small object's bytes, or None if there is none (one GET, no HEAD first)."""
        with self.errors(f"read {key}"):
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            except ClientError as error:
                if error_code(error) in MISSING_KEY:
                    return None
                raise
            try:
                return body.read()
            finally:
                body.close()

    def put_json(self, key: str, value: object) -> None:
        self.put_bytes(key, json.dumps(value, indent=1, sort_keys=True).encode(),
                       "application/json")

    def get_json(self, key: str) -> object | None:
        """A small JSON object, or None if there is none. Raise ArchiveError if it is not
        JSON (damaged or replaced)."""
        data = self.get_bytes(key)
        if data is None:
            return None
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as error:
            raise ArchiveError(f"{key} in bucket {self.bucket} is not valid JSON "
                               f"({str(error)[:80]}): damaged or replaced",
                               "run: cya archive verify") from None

    def list_keys(self, under: str) -> dict[str, dict]:
        """Every object under a key prefix, with its size, class and date."""
        found = {}
        with self.errors(f"list {under}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=under)
            for page in pages:
                for item in page.get("Contents", ()):
                    found[item["Key"]] = item
        return found

    def delete(self, key: str) -> None:
        with self.errors(f"delete {key}"):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def request_thaw(self, key: str, tier: str, days: int) -> None:
        """Ask S3 to make a temporary readable copy of an archived object."""
        with self.errors(f"thaw {key}"):
            try:
                self.client.restore_object(
                    Bucket=self.bucket, Key=key,
                    RestoreRequest={"Days": days,
                                    "GlacierJobParameters": {"Tier": tier.capitalize()}})
            except ClientError as error:
                if error_code(error) != "RestoreAlreadyInProgress":
                    raise

    def get_range(self, key: str, first: int, end: int):
        """A streaming body of bytes ``first`` to ``end - 1`` of an object (close it)."""
        return self.client.get_object(Bucket=self.bucket, Key=key,
                                      Range=f"bytes={first}-{end - 1}")["Body"]

    def block_public_access(self) -> None:
        with self.errors("block public access"):
            self.client.put_public_access_block(
                Bucket=self.bucket, PublicAccessBlockConfiguration={
                    "BlockPublicAcls": True, "IgnorePublicAcls": True,
                    "BlockPublicPolicy": True, "RestrictPublicBuckets": True})

    def add_lifecycle_rule(self, rule_id: str, days: int) -> None:
        """Add (or replace) a rule aborting multipart uploads older than ``days`` under the
        prefix, keeping the bucket's other rules."""
        with self.errors("set the lifecycle rule"):
            try:
                rules = self.client.get_bucket_lifecycle_configuration(
                    Bucket=self.bucket)["Rules"]
            except ClientError as error:
                if "NoSuchLifecycleConfiguration" not in str(error):
                    raise
                rules = []
            rules = [r for r in rules if r.get("ID") != rule_id]
            rules.append({"ID": rule_id, "Status": "Enabled",
                          "Filter": {"Prefix": self.prefix},
                          "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days}})
            self.client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": rules})

    def versioning(self) -> str | None:
        with self.errors("read versioning"):
            return self.client.get_bucket_versioning(Bucket=self.bucket).get("Status")

    def object_lock(self) -> str | None:
        """The bucket's default object lock ("GOVERNANCE, 30 days"), "enabled" without a
        default retention, or None when object lock is off."""
        with self.errors("read the object lock configuration"):
            try:
                found = self.client.get_object_lock_configuration(Bucket=self.bucket)
            except ClientError as error:
                if "ObjectLockConfigurationNotFound" in str(error) or \
                        error_code(error) in ("404", "NotImplemented"):
                    return None
                raise
        config = found.get("ObjectLockConfiguration", {})
        if config.get("ObjectLockEnabled") != "Enabled":
            return None
        retention = config.get("Rule", {}).get("DefaultRetention", {})
        if not retention:
            return "enabled, no default retention"
        span = (f"{retention['Days']} days" if "Days" in retention
                else f"{retention.get('Years')} years")
        return f"{retention.get('Mode', '?')}, {span}"

    def uploads(self, under: str) -> list[dict]:
        """Multipart uploads in progress under a key prefix (Key, UploadId, Initiated)."""
        found: list[dict] = []
        with self.errors(f"list the uploads in progress under {under or '/'}"):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=under)
            for page in pages:
                found += page.get("Uploads", [])
        return found

    def abort_uploads_before(self, under: str, started) -> int:
        """Abort the uploads under ``under`` begun before ``started``: the caller holds the
        tree's lock, so no live run of this tree owns them. Return how many."""
        aborted = 0
        for upload in self.uploads(under):
            if upload.get("Initiated") is not None and upload["Initiated"] >= started:
                continue
            if not any(upload["Key"].startswith(self.key(p)) for p in PREFIXES):
                continue
            with self.errors(f"abort an upload of {upload['Key']}"):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                   UploadId=upload["UploadId"])
            aborted += 1
        return aborted


def thaw_state(head: dict) -> str:
    """"readable", "thawing" or "frozen", from an object's HEAD."""
    klass = head.get("StorageClass", "STANDARD")
    if klass not in ARCHIVE_CLASSES:
        return "readable"
    restore = head.get("Restore")
    if not restore:
        return "frozen"
    return "thawing" if 'ongoing-request="true"' in restore else "readable"


class StreamingUpload:
    """A file-like sink (``write``, ``tell``) whose bytes become one multipart object.

    Parts are uploaded by a small thread pool while the producer keeps writing; the
    producer blocks when ``in_flight`` parts are on their way. ``close`` sends the
    last part, completes the upload and verifies it by HEAD; ``abort`` drops it.
    """

    def __init__(self, remote: Remote, key: str, part_size: int, metadata: dict[str, str],
                 on_progress: Callable[[int], None] | None = None):
        self.remote = remote
        self.on_progress = on_progress  # called with the bytes written so far
        self.key = key
        self.part_size = part_size
        self.nonce = secrets.token_hex(16)
        self.chunks: list[bytes] = []  # the part being filled, as written
        self.filled = 0
        self.position = 0
        self.parts: list[dict] = []
        self.digests: list[bytes] = []
        self.pending: list[Future] = []
        self.slots = threading.Semaphore(remote.in_flight)
        self.pool = ThreadPoolExecutor(remote.in_flight, thread_name_prefix="cya-upload")
        with remote.errors(f"start the upload of {key}"):
            self.upload_id = remote.client.create_multipart_upload(
                Bucket=remote.bucket, Key=key, StorageClass=remote.storage_class,
                ChecksumAlgorithm="SHA256", ContentType="application/x-tar",
                Metadata={**metadata, "cya-nonce": self.nonce})["UploadId"]

    def tell(self) -> int:
        return self.position

    def write(self, data: bytes) -> int:
        count = len(data)
        self.position += count
        if self.on_progress is not None:
            self.on_progress(self.position)
        while data:
            room = self.part_size - self.filled
            piece, data = (data, b"") if len(data) <= room else (data[:room], data[room:])
            self.chunks.append(piece)
            self.filled += len(piece)
            if self.filled == self.part_size:
                self._send()
        return count

    def flush(self) -> None:
        pass

    def _send(self) -> None:
        """Hand the filled part to the pool. Memory stays near (in_flight + 1) parts:
        the slot is taken before the part's bytes are joined."""
        self._raise_failed()
        self.slots.acquire()
        data = b"".join(self.chunks)
        self.chunks, self.filled = [], 0
        entry = {"PartNumber": len(self.parts) + 1}
        self.parts.append(entry)
        self.digests.append(b"")
        future = self.pool.submit(self._upload_part, entry, data)
        future.add_done_callback(lambda _: self.slots.release())
        self.pending.append(future)

    def _upload_part(self, entry: dict, data: bytes) -> None:
        # hashed here, in the pool: hashlib releases the GIL, so it runs beside the tar
        digest = hashlib.sha256(data).digest()
        self.digests[entry["PartNumber"] - 1] = digest
        entry["ChecksumSHA256"] = b64(digest)
        with self.remote.errors(f"upload part {entry['PartNumber']} of {self.key}"):
            answer = self.remote.client.upload_part(
                Bucket=self.remote.bucket, Key=self.key, UploadId=self.upload_id,
                PartNumber=entry["PartNumber"], Body=data,
                ChecksumSHA256=entry["ChecksumSHA256"])
        entry["ETag"] = answer["ETag"]

    def _raise_failed(self) -> None:
        for future in self.pending:
            if future.done() and future.exception() is not None:
                raise future.exception()
        self.pending = [f for f in self.pending if not f.done()]

    def close(self) -> Uploaded:
        """Send what is left, complete the upload, and check it by HEAD. Raise
        ArchiveError (after aborting the upload) if anything does not match."""
        try:
            if self.chunks or not self.parts:
                self._send()
            for future in self.pending:
                future.result()
            self.pool.shutdown()
            expected = (b64(hashlib.sha256(b"".join(self.digests)).digest())
                        + f"-{len(self.parts)}")
            self._complete()
            return self._verify(expected)
        except BaseException:
            self.abort()
            raise

    def _complete(self) -> None:
        client = self.remote.client
        try:
            with self.remote.errors(f"complete the upload of {self.key}"):
                client.complete_multipart_upload(
                    Bucket=self.remote.bucket, Key=self.key, UploadId=self.upload_id,
                    MultipartUpload={"Parts": self.parts})
        except ArchiveError:
            # The response may have been lost after S3 completed it: the object with
            # our nonce is the answer.
            head = self.remote.head(self.key)
            if head is None or head.get("Metadata", {}).get("cya-nonce") != self.nonce:
                raise
            log.info("completing %s: the response was lost, but the object is there",
                     self.key)

    def _verify(self, expected_checksum: str) -> Uploaded:
        head = self.remote.head(self.key)
        problems = []
        if head is None:
            problems.append("it is not there")
        else:
            if head.get("Metadata", {}).get("cya-nonce") != self.nonce:
                problems.append("another upload replaced it")
            if head["ContentLength"] != self.position:
                problems.append(f"{head['ContentLength']} bytes instead of {self.position}")
            klass = head.get("StorageClass", "STANDARD")
            if klass != self.remote.storage_class:
                problems.append(f"storage class {klass} instead of {self.remote.storage_class}")
            reported = head.get("ChecksumSHA256")
            if reported and reported.split("-")[0] != expected_checksum.split("-")[0]:
                problems.append(f"checksum {reported} instead of {expected_checksum}")
        if problems:
            fate = "kept (not ours)"
            if head is not None and head.get("Metadata", {}).get("cya-nonce") == self.nonce:
                self.remote.delete(self.key)
                fate = "deleted"
            raise ArchiveError(f"the uploaded {self.key} is wrong ({', '.join(problems)}) and "
                               f"was {fate}; nothing was recorded",
                               "run the archive again; the bag will be uploaded anew")
        return Uploaded(self.key, self.position, head.get("ChecksumSHA256") or expected_checksum,
                        len(self.parts))

    def abort(self) -> None:
        self.pool.shutdown(cancel_futures=True)
        try:
            self.remote.client.abort_multipart_upload(
                Bucket=self.remote.bucket, Key=self.key, UploadId=self.upload_id)
        except (ClientError, BotoCoreError) as error:
            log.warning("could not abort the upload of %s (%s); the bucket's lifecycle "
                        "rule removes it", self.key, error)
