"""The backup kind's view of a bucket prefix in S3-compatible storage (MinIO,
AWS S3, Ceph, Garage, ...), through aiobotocore.

The prefix is read as a directory is: the objects directly below it (a
listing with delimiter `/`, every page of it), key below the prefix = name,
LastModified = mtime, Size = size. Verification streams the newest object
into the same verifiers as a file: they run in a worker thread and read
through `ObjectReader`, a seekable raw stream whose reads are GETs run on
the event loop (a zip's central directory is read with a Range request).
Every GET is conditional on the listed ETag, so an object replaced while it
is read fails as "changed", never as corrupt.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fnmatch
import hashlib
import io
import os
import ssl
import threading
import time
import weakref
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    SSLError as BotoSSLError,
)

from exporter.probes.backup.config import S3Location
from exporter.probes.backup.integrity import (
    BudgetExceeded,
    SourceChanged,
    SourceFailed,
)
from exporter.probes.backup.listing import BackupFile
from exporter.probes.base import ProbeError, Reason, Sample, first_line
from exporter.probes.context import Deadline
from exporter.probes.shared.tls import TlsClientConfig

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from types_aiobotocore_s3 import S3Client

T = TypeVar("T")

CHUNK = 1 << 20
# What the server says when the credentials are refused, by error code.
_AUTH_CODES = {
    "InvalidAccessKeyId": "the access key id is not known to the server",
    "SignatureDoesNotMatch": "the secret access key does not match the access key id",
    "AccessDenied": "access denied (the key may lack s3:ListBucket / s3:GetObject)",
    "InvalidToken": "the credentials were refused",
    "ExpiredToken": "the credentials have expired",
    "AllAccessDisabled": "all access to this bucket is disabled",
}
# Answers that mean the config points at the wrong place.
_CONFIG_CODES = {
    "AuthorizationHeaderMalformed": "the region does not match the bucket's",
    "PermanentRedirect": "the bucket is in another region or at another endpoint",
    "IllegalLocationConstraintException": "the region does not match the bucket's",
    "InvalidBucketName": "the bucket name is not valid on this server",
}


# --- the client -------------------------------------------------------------------


class S3Clients:
    """The probe's client, kept between runs and made again when its secret
    or TLS files change (a rotation needs no reload)."""

    def __init__(self) -> None:
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: S3Client | None = None
        self._fingerprint: tuple[str, ssl.SSLContext | None] | None = None

    async def client(
        self, location: S3Location, secret: str, call_limit: float
    ) -> S3Client:
        """The client for *location* with *secret*; *call_limit* bounds each
        call (the run's deadline bounds it first)."""
        # The shared context changes when a TLS file does (a rotation): a
        # new client then reads the files again.
        tls = _tls_context(location)
        fingerprint = (hashlib.sha256(secret.encode()).hexdigest(), tls)
        if self._client is not None and fingerprint == self._fingerprint:
            return self._client
        await self.aclose()
        session = await _loop_session()
        stack = contextlib.AsyncExitStack()
        client = await stack.enter_async_context(
            session.create_client(
                "s3",
                endpoint_url=location.endpoint,
                region_name=location.region,
                aws_access_key_id=location.access_key_id,
                aws_secret_access_key=secret,
                verify=_verify(location),
                config=_client_config(location, call_limit),
            )
        )
        self._stack, self._client, self._fingerprint = stack, client, fingerprint
        return client

    async def aclose(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()


# One session per event loop (botocore sessions are not for sharing
# between threads), its loader's caches filled in a worker thread.
_SESSIONS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AioSession] = (
    weakref.WeakKeyDictionary()
)


async def _loop_session() -> AioSession:
    """The running loop's session. A client of a new session reads and
    parses the S3 service model, endpoints and partitions (JSON files) on
    the event loop, blocking every other probe for 100-250 ms
    (aiobotocore#1199): every `check`, and the daemon at start and at every
    client made again (a rotated secret, a reload) paid it. Two first
    callers at once may both warm a session: harmless, and off the loop."""
    loop = asyncio.get_running_loop()
    session = _SESSIONS.get(loop)
    if session is None:
        session = _session()
        # In aiobotocore 3.10 (the lower bound), not yet in its type stubs.
        warm = session.warm_up_loader_caches  # type: ignore[attr-defined]
        await asyncio.to_thread(warm, "s3")
        session = _SESSIONS.setdefault(loop, session)
    return session


def _session() -> AioSession:
    """A session that reads no ~/.aws files and no AWS_PROFILE: the probe's
    config is the whole truth."""
    # (name in the config file, environment variable, default, converter)
    ignored = (None, None, None, None)
    session = AioSession(session_vars={"profile": ignored})
    session.set_config_variable("config_file", os.devnull)
    session.set_config_variable("credentials_file", os.devnull)
    return session


def _tls_context(location: S3Location) -> ssl.SSLContext | None:
    if location.tls_config is None:
        return None
    return location.tls_config.context()


def _verify(location: S3Location) -> str | bool | None:
    """botocore's `verify`: the CA file, False to skip verification, or
    None for its own CA bundle."""
    tls = location.tls_config or TlsClientConfig()
    if tls.insecure_skip_verify:
        return False
    return str(tls.ca_file) if tls.ca_file is not None else None


def _client_config(location: S3Location, timeout: float) -> AioConfig:
    # One attempt per run, as every kind: a retry would only hide a failure
    # the next run sees anyway. The run's deadline bounds every call; these
    # timeouts are only the upper limit.
    options: dict[str, Any] = {
        "region_name": location.region,
        "signature_version": "s3v4",
        "s3": {"addressing_style": "path" if location.path_style else "virtual"},
        "retries": {"total_max_attempts": 1, "mode": "standard"},
        "connect_timeout": timeout,
        "read_timeout": timeout,
        "user_agent_extra": "readiness-exporter",
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
    }
    tls = location.tls_config
    if tls is not None and tls.cert_file is not None:
        options["client_cert"] = (
            (str(tls.cert_file), str(tls.key_file))
            if tls.key_file is not None
            else str(tls.cert_file)
        )
    return AioConfig(**options)


# --- listing ----------------------------------------------------------------------


async def list_prefix(
    client: S3Client, location: S3Location, glob: str, deadline: Deadline
) -> list[BackupFile]:
    """Every object directly below the prefix whose name matches *glob*."""
    found = []
    paginator = client.get_paginator("list_objects_v2")
    pages = paginator.paginate(
        Bucket=location.bucket, Prefix=location.prefix, Delimiter="/"
    )
    async with asyncio.timeout_at(deadline.loop_time()):
        async for page in pages:
            for item in page.get("Contents", ()):
                name = item["Key"][len(location.prefix) :]
                if not name or not fnmatch.fnmatchcase(name, glob):
                    continue  # the folder's own marker, or another name
                mtime = item["LastModified"].timestamp()
                etag = item.get("ETag", "")
                identity = (item["Key"], etag, item["Size"], mtime)
                found.append(
                    BackupFile(
                        name, item["Size"], mtime, identity, key=item["Key"], etag=etag
                    )
                )
    return found


def listing_error(
    error: Exception, location: S3Location, samples: tuple[Sample, ...]
) -> ProbeError:
    """A failed listing in the runner's terms, with the series to keep."""
    reason, text = classify(error)
    where = location.url
    if location.endpoint:
        where += f" at {location.endpoint}"
    return ProbeError(f"cannot list {where}: {text}", reason=reason, samples=samples)


def classify(error: BaseException) -> tuple[Reason, str]:
    """The reason and a short text for an S3 failure; never the secret,
    never the server's own message (it may echo the request)."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code", "?"))
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        if code in ("NoSuchBucket",):
            bucket = details.get("BucketName", "")
            return Reason.CONFIG, f"bucket {bucket!r} does not exist (NoSuchBucket)"
        if code in _AUTH_CODES:
            return Reason.AUTH, f"{_AUTH_CODES[code]} ({code}, HTTP {status})"
        if code in _CONFIG_CODES:
            return Reason.CONFIG, f"{_CONFIG_CODES[code]} ({code}, HTTP {status})"
        return Reason.PROTOCOL, f"the server answered {code} (HTTP {status})"
    if isinstance(error, BotoSSLError | ssl.SSLError | aiohttp.ClientSSLError):
        return Reason.TLS, f"TLS failed: {first_line(error, 160)}"
    if isinstance(error, ConnectTimeoutError | ReadTimeoutError | TimeoutError):
        return Reason.TIMEOUT, "no answer within the run's time"
    if isinstance(error, EndpointConnectionError | aiohttp.ClientConnectionError):
        return Reason.CONNECT, first_line(error, 160)
    if isinstance(error, OSError):
        return Reason.CONNECT, first_line(error, 160)
    return Reason.PROTOCOL, f"{type(error).__name__}: {first_line(error, 160)}"


S3_ERRORS = (BotoCoreError, ClientError, aiohttp.ClientError, OSError, TimeoutError)


# --- reading an object from a worker thread -----------------------------------------


class LoopBridge:
    """Runs coroutines on the event loop for a worker thread, within a
    deadline and until told to stop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        deadline: float,
        stop: threading.Event,
    ) -> None:
        self._loop = loop
        self.deadline = deadline  # time.monotonic()
        self._stop = stop

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """The result of *coroutine*; `BudgetExceeded` when the time runs out
        or the caller stops, the store's failures as `SourceFailed` (a
        precondition that fails, as `SourceChanged`)."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return self._wait(future)
        except BudgetExceeded:
            future.cancel()
            raise
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in (
                "PreconditionFailed",
                "412",
            ):
                raise SourceChanged() from None
            raise SourceFailed(_read_failure(error)) from None
        except S3_ERRORS as error:
            raise SourceFailed(_read_failure(error)) from None

    def _wait(self, future: concurrent.futures.Future[T]) -> T:
        """Wait for *future* in short slices, so a stop is seen soon."""
        while True:
            if self._stop.is_set():
                raise BudgetExceeded("stopped")
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise BudgetExceeded("time")
            with contextlib.suppress(concurrent.futures.TimeoutError):
                return future.result(timeout=min(left, 0.2))

    def call_soon(self, function: Any) -> None:
        self._loop.call_soon_threadsafe(function)


def _read_failure(error: BaseException) -> str:
    _reason, text = classify(error)
    return f"reading the object failed: {text}"


class ObjectReader(io.RawIOBase):
    """One object as a seekable raw stream, for a worker thread.

    Reading streams one GET from the current position; a seek elsewhere
    drops it and the next read starts a ranged GET there.
    """

    def __init__(
        self,
        bridge: LoopBridge,
        client: S3Client,
        bucket: str,
        backup: BackupFile,
    ) -> None:
        super().__init__()
        assert backup.key is not None  # noqa: S101 (an object has a key)
        self._bridge = bridge
        self._client = client
        self._bucket = bucket
        self._key = backup.key
        self._etag = backup.etag
        self._size = backup.size
        self._position = 0
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}
        target = base[whence] + offset
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        if target != self._position:
            self._drop()
            self._position = target
        return target

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if self._position >= self._size or not len(view):
            return 0
        if self._body is None:
            self._body = self._bridge.call(self._open(self._position))
        data = self._bridge.call(_read_some(self._body, len(view)))
        if not data:
            raise SourceFailed(
                f"the download ended at byte {self._position} of {self._size}"
            )
        view[: len(data)] = data
        self._position += len(data)
        return len(data)

    def close(self) -> None:
        self._drop()
        super().close()

    async def _open(self, start: int) -> Any:
        options: dict[str, Any] = {"Bucket": self._bucket, "Key": self._key}
        if self._etag:
            options["IfMatch"] = self._etag
        if start:
            options["Range"] = f"bytes={start}-"
        async with asyncio.timeout(self._bridge.deadline - time.monotonic()):
            reply = await self._client.get_object(**options)
        return reply["Body"]

    def _drop(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            self._bridge.call_soon(body.close)


async def _read_some(body: Any, size: int) -> bytes:
    """Up to *size* bytes of *body*, fewer only at its end."""
    parts: list[bytes] = []
    wanted = min(size, CHUNK)
    while wanted:
        data: bytes = await body.read(wanted)
        if not data:
            break
        parts.append(data)
        wanted -= len(data)
    return b"".join(parts)


async def read_object_head(
    client: S3Client, bucket: str, backup: BackupFile, size: int, deadline: Deadline
) -> bytes:
    """The first *size* bytes of an object (one ranged GET)."""
    async with asyncio.timeout_at(deadline.loop_time()):
        reply = await client.get_object(
            Bucket=bucket, Key=backup.key or "", Range=f"bytes=0-{size - 1}"
        )
        body = reply["Body"]
        try:
            return await _read_some(body, size)
        finally:
            body.close()
