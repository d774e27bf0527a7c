"""Whole-file operations by URI (pipeline/storage/uri_fs.py): read, write atomically, test, list, delete.

Runs anywhere (driver, Connect client, ranks). A write is atomic everywhere: where the file system can rename
(a local disk, HDFS) the bytes go to a hidden temporary name in the same folder first and are then moved over the
target; on object stores (S3, GCS, Azure) an object becomes visible only once its upload completes (a single PUT,
or a multipart upload's final step), so the whole object is written directly and a reader sees either the old
object or the new one, never half of one. A second "pointer" object would add a request per write without adding
to that guarantee.
"""

from __future__ import annotations

import os
import uuid

import pyarrow.fs as pafs

from pipeline.storage.uri_fs import resolve, scheme

RENAMING = ("file", "hdfs", "viewfs")  # file systems with an atomic rename


def read_bytes(uri: str) -> bytes:
    filesystem, path = resolve(uri)
    with filesystem.open_input_stream(path) as stream:
        return stream.read()


def write_bytes(uri: str, data: bytes) -> None:
    """Write `data` to `uri` atomically (module docstring); parent folders are created where folders exist."""
    filesystem, path = resolve(uri)
    parent = path.rsplit("/", 1)[0]
    if scheme(uri) in RENAMING:
        filesystem.create_dir(parent, recursive=True)
        temporary = f"{parent}/.{path.rsplit('/', 1)[-1]}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        with filesystem.open_output_stream(temporary) as stream:
            stream.write(data)
        filesystem.move(temporary, path)
    else:
        with filesystem.open_output_stream(path) as stream:
            stream.write(data)


def make_dirs(uri: str) -> None:
    """Create the folder `uri` and its parents (object stores have no folders: nothing to do there)."""
    if scheme(uri) in RENAMING:
        filesystem, path = resolve(uri)
        filesystem.create_dir(path, recursive=True)


def exists(uri: str) -> bool:
    filesystem, path = resolve(uri)
    return filesystem.get_file_info(path).type != pafs.FileType.NotFound


def list_files(uri: str) -> list[str]:
    """Files under the folder `uri` (recursively), as URIs of the same scheme, sorted; [] when it is absent."""
    filesystem, path = resolve(uri)
    if filesystem.get_file_info(path).type == pafs.FileType.NotFound:
        return []
    selector = pafs.FileSelector(path, recursive=True)
    found = [i.path for i in filesystem.get_file_info(selector) if i.type == pafs.FileType.File]
    prefix = uri.rstrip("/")
    return sorted(prefix + f[len(path.rstrip("/")) :] for f in found)


def delete(uri: str) -> None:
    """Remove a file, or a folder with everything under it; nothing when it is absent."""
    filesystem, path = resolve(uri)
    kind = filesystem.get_file_info(path).type
    if kind == pafs.FileType.Directory:
        filesystem.delete_dir(path)
    elif kind == pafs.FileType.File:
        filesystem.delete_file(path)


def local_path(uri: str, folder: str) -> str:
    """A local file with `uri`'s bytes: the file itself when local, else a copy (same name) in the local `folder`.

    For libraries that take only local paths: MLflow's `log_artifact` and a pyfunc's `artifacts` (which know
    s3:// but not Hadoop's s3a://, and nothing of the storage layer's endpoint settings).
    """
    if scheme(uri) == "file":
        return resolve(uri)[1]
    copy = os.path.join(folder, uri.rstrip("/").rsplit("/", 1)[-1])
    with open(copy, "wb") as handle:
        handle.write(read_bytes(uri))
    return copy


def parquet_dataset(uri: str):
    """A pyarrow dataset over the Parquet files under `uri` (the ranks' features, the planner's row groups)."""
    import pyarrow.dataset as ds

    filesystem, path = resolve(uri)
    return ds.dataset(path, format="parquet", filesystem=filesystem)
