"""A URI (or plain path) -> the pyarrow file system that holds it and the path within it.

Runs anywhere: driver, Connect client, training ranks, the registered model. Hadoop's `s3a://` / `s3n://` and
Arrow's `s3://` name the same objects; this is the one place that maps them. Object stores are reached with the
AWS SDK's standard settings: credentials from the environment or the instance, the endpoint from
AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL (an S3-compatible server such as MinIO, or a loopback test server), the
region from AWS_REGION / AWS_DEFAULT_REGION. Other schemes (gs://, hdfs://, abfs://...) go to pyarrow's own
`FileSystem.from_uri`.
"""

from __future__ import annotations

import os
import re
import threading
from urllib.parse import urlparse

import pyarrow.fs as pafs

HADOOP_S3 = ("s3a", "s3n")  # Hadoop connector schemes for S3 objects
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_cache: dict[tuple, pafs.FileSystem] = {}
_lock = threading.Lock()


def scheme(uri: str) -> str:
    """'s3' for s3://, s3a:// and s3n://; 'file' for plain paths, file:/ and file://; else the URI's scheme."""
    match = _SCHEME.match(uri)
    if not match or match.group(1).lower() == "file":
        return "file"
    name = match.group(1).lower()
    return "s3" if name in HADOOP_S3 else name


def is_local(uri: str) -> bool:
    return scheme(uri) == "file"


def arrow_uri(uri: str) -> str:
    """The URI as pyarrow names it: s3a://b/k and s3n://b/k become s3://b/k; anything else is unchanged."""
    match = _SCHEME.match(uri)
    if match and match.group(1).lower() in HADOOP_S3:
        return "s3://" + uri[match.end() :]
    return uri


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """The file system holding `uri` and the path to hand it (bucket/key for object stores)."""
    kind = scheme(uri)
    if kind == "file":
        # file:///x (a URI) and file:/x (how Hadoop and Spark name a local file) alike
        path = "/" + uri.removeprefix("file:").lstrip("/") if uri.startswith("file:") else uri
        return _cached(("file",), pafs.LocalFileSystem), os.path.abspath(path)
    if kind == "s3":
        parsed = urlparse(arrow_uri(uri))
        return _cached(("s3", *_s3_settings()), _s3_filesystem), f"{parsed.netloc}{parsed.path}".rstrip("/")
    filesystem, path = pafs.FileSystem.from_uri(uri)
    return filesystem, path


def join(uri: str, *parts: str) -> str:
    """`uri` / part / part, with '/' whatever the platform (object keys)."""
    return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts)])


def _s3_settings() -> tuple:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
    return endpoint, region


def _s3_filesystem() -> pafs.S3FileSystem:
    endpoint, region = _s3_settings()
    options: dict = {"region": region or None}
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        options.update(endpoint_override=parsed.netloc, scheme=parsed.scheme)
    return pafs.S3FileSystem(**options)


def _cached(key: tuple, build) -> pafs.FileSystem:
    with _lock:
        if key not in _cache:
            _cache[key] = build()
        return _cache[key]
