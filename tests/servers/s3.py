"""An S3-compatible server for tests: moto's server mode on 127.0.0.1.

`start_s3()` runs moto's threaded server on a free port of 127.0.0.1 with
authentication on: it creates an IAM user allowed s3:*, hands out its access
key, and from then on moto checks every request's signature against IAM, so
a wrong key or secret is refused as AWS and MinIO refuse it
(InvalidAccessKeyId, SignatureDoesNotMatch).

    server = start_s3()
    server.put("backups", "db/backup_1.sql.gz", data, age_seconds=3600)
    server.endpoint, server.access_key_id, server.secret_access_key
    server.stop()

S3 sets LastModified itself, at upload; `put(..., age_seconds=)` dates an
object back as a backup job of that age would have, in the server's own
store (the in-process backend), the way `os.utime` dates a file;
`store_many()` fills a bucket with thousands of objects the same way.
"""

from __future__ import annotations

import datetime
import json
import logging
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import botocore.session
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.s3.models import s3_backends

REGION = "us-east-1"
_ALLOW_S3 = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


@dataclass
class S3Server:
    """A running moto server and a user's credentials for it."""

    server: ThreadedMotoServer
    endpoint: str
    access_key_id: str
    secret_access_key: str
    _client: Any = None

    def client(self) -> Any:
        """A plain (blocking) botocore client for setting things up."""
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _new_client(self) -> Any:
        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def create_bucket(self, bucket: str) -> None:
        self.client().create_bucket(Bucket=bucket)

    def put(self, bucket: str, key: str, data: bytes, age_seconds: float = 0.0) -> None:
        """Upload *data* to *key*, dated *age_seconds* ago."""
        self.client().put_object(Bucket=bucket, Key=key, Body=data)
        if age_seconds:
            self.backdate(bucket, [key], age_seconds)

    def store_many(self, bucket: str, keys: list[str], data: bytes = b"") -> None:
        """Store *data* under every key of *keys* straight into the server's
        store: thousands of uploads over HTTP would take the test's time,
        and what is tested is reading them back."""
        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        for key in keys:
            backend.put_object(bucket, key, data)

    def backdate(self, bucket: str, keys: Iterable[str], age_seconds: float) -> None:
        """Set the LastModified of *keys* to *age_seconds* ago."""
        stored = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[bucket].keys
        stamp = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        stamp -= datetime.timedelta(seconds=age_seconds)
        for key in keys:
            stored[key].last_modified = stamp

    def stop(self) -> None:
        self.server.stop()


def _post(url: str, body: bytes) -> None:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def start_s3() -> S3Server:
    """Start moto on 127.0.0.1, make a user, then turn authentication on."""
    # One line per request on stderr otherwise.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        # moto keeps its authentication switch process-wide: a server that
        # an earlier test turned it on for would refuse this setup's
        # unsigned requests (InvalidClientTokenId).
        _post(f"{endpoint}/moto-api/reset-auth", b"inf")
        _post(f"{endpoint}/moto-api/reset", b"")
        iam: Any = botocore.session.get_session().create_client(
            "iam",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        iam.create_user(UserName="backup-reader")
        iam.put_user_policy(
            UserName="backup-reader",
            PolicyName="s3",
            PolicyDocument=json.dumps(_ALLOW_S3),
        )
        key = iam.create_access_key(UserName="backup-reader")["AccessKey"]
        # From here on, every request must be signed with a key moto knows.
        _post(f"{endpoint}/moto-api/reset-auth", b"0")
    except BaseException:
        server.stop()
        raise
    return S3Server(server, endpoint, key["AccessKeyId"], key["SecretAccessKey"])
