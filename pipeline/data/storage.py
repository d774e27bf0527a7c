"""File-system operations through Hadoop's FileSystem API (driver side): local paths and Hadoop URIs alike."""

from __future__ import annotations

import glob
import os
import re
import uuid
from dataclasses import dataclass

from pipeline.errors import DataError


@dataclass(frozen=True)
class FileInfo:
    path: str
    size: int
    modified_ms: int = 0  # modification time, milliseconds since the epoch


class Storage:
    """Thin wrapper over org.apache.hadoop.fs.FileSystem reached through the Spark JVM."""

    def __init__(self, spark):
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _path(self, path: str):
        return self._jvm.org.apache.hadoop.fs.Path(path)

    def _fs(self, path: str):
        return self._path(path).getFileSystem(self._conf)

    def glob_files(self, pattern: str) -> list[FileInfo]:
        """Files matched by a path or glob; a directory expands to its visible files (not _SUCCESS, .crc).

        Local paths are listed with Python's os.scandir: through Hadoop's API every file costs py4j round trips
        (measured: 3,000 image files listed in 14.8 s, vs well under a second here). Other file systems, and
        globs with Hadoop-only syntax ({a,b}), go through Hadoop.
        """
        local = _local_path(pattern)
        if local is not None and "{" not in local:
            return _visible(_list_local(local))
        fs = self._fs(pattern)
        statuses = fs.globStatus(self._path(pattern)) or []
        found: list[FileInfo] = []
        for status in statuses:
            if status.isDirectory():
                iterator = fs.listFiles(status.getPath(), True)
                while iterator.hasNext():
                    child = iterator.next()
                    found.append(FileInfo(child.getPath().toString(), child.getLen(), child.getModificationTime()))
            else:
                found.append(FileInfo(status.getPath().toString(), status.getLen(), status.getModificationTime()))
        return _visible(found)

    def glob_dirs(self, pattern: str) -> list[str]:
        """Directories matched by a glob (not their contents)."""
        statuses = self._fs(pattern).globStatus(self._path(pattern)) or []
        return sorted(s.getPath().toString() for s in statuses if s.isDirectory())

    def first_line(self, path: str) -> str | None:
        stream = self._fs(path).open(self._path(path))
        try:
            reader = self._jvm.java.io.BufferedReader(self._jvm.java.io.InputStreamReader(stream, "UTF-8"))
            return reader.readLine()
        finally:
            stream.close()

    def head_bytes(self, path: str, size: int) -> bytes:
        """The first `size` bytes of a file (fewer when it is shorter): what a format sniff looks at."""
        local = _local_path(path)
        if local is not None:
            with open(local, "rb") as file:
                return file.read(size)
        stream = self._fs(path).open(self._path(path))
        try:
            return bytes(stream.readNBytes(size))
        finally:
            stream.close()

    def exists(self, path: str) -> bool:
        return bool(self._fs(path).exists(self._path(path)))

    def delete(self, path: str) -> None:
        fs = self._fs(path)
        if fs.exists(self._path(path)):
            fs.delete(self._path(path), True)

    def rename(self, src: str, dst: str) -> None:
        if not self._fs(src).rename(self._path(src), self._path(dst)):
            raise DataError(f"could not move {src} to {dst}. Fix: check permissions and free space there")

    def write_text(self, path: str, text: str) -> None:
        stream = self._fs(path).create(self._path(path), True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()

    def check_writable(self, directory: str, setting: str) -> None:
        """Fail before any work when `directory` cannot be written (names the setting that chose it)."""
        probe = f"{directory.rstrip('/')}/.write-probe-{uuid.uuid4().hex}"
        try:
            self.write_text(probe, "ok")
            self.delete(probe)
        except Exception as exc:  # py4j wraps the Java IOException; the message is what matters
            reason = str(exc).splitlines()[0][:300]
            raise DataError(
                f"{setting}={directory} is not writable ({reason}). Fix: point {setting} at a writable folder"
            ) from None

    def replace_dir(self, staged: str, final: str) -> None:
        """Swap a fully written `staged` folder into `final`, so readers never see a partial output."""
        parent, name = final.rstrip("/").rsplit("/", 1)
        # Hidden (dot) name: Spark's partition discovery and most readers skip it during the swap.
        backup = f"{parent}/.{name}.old-{uuid.uuid4().hex[:8]}"
        had_old = self.exists(final)
        if had_old:
            self.rename(final, backup)
        self._fs(parent).mkdirs(self._path(parent))
        self.rename(staged, final)
        if had_old:
            self.delete(backup)


def _visible(found: list[FileInfo]) -> list[FileInfo]:
    """Sorted, without hidden and marker files (names starting with _ or .), as Spark's readers skip them."""
    return sorted((f for f in found if not f.path.rsplit("/", 1)[-1].startswith(("_", "."))), key=lambda f: f.path)


def _local_path(pattern: str) -> str | None:
    """The local file-system path of `pattern` (no scheme, or file:), else None."""
    if pattern.startswith("file:"):
        return "/" + pattern.removeprefix("file:").lstrip("/")
    if "://" in pattern or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", pattern):
        return None
    return os.path.abspath(pattern)


def _list_local(path: str) -> list[FileInfo]:
    """Files matched by a local glob, directories expanded recursively, named as Hadoop names them (file:/...)."""
    found = []
    for match in sorted(glob.glob(path)) if glob.has_magic(path) else [path]:
        if os.path.isdir(match):
            for folder, _, names in os.walk(match):
                found += [_local_info(os.path.join(folder, name)) for name in names]
        elif os.path.isfile(match):
            found.append(_local_info(match))
    return found


def _local_info(path: str) -> FileInfo:
    stat = os.stat(path)
    return FileInfo(f"file:{os.path.abspath(path)}", stat.st_size, int(stat.st_mtime * 1000))
