"""Object storage: the pipeline's buckets, addressed by fsspec URLs.

Only this module talks to fsspec. On the embedded default every bucket is a
folder of the workspace and locations look like ``file:///abs/ws/landing/key``;
the same calls work on any fsspec URL root (``s3://...``) later.

Objects become visible only when complete: writes go to a hidden temporary name
first and are renamed into place, so a reader (or a crash) never sees half a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

import fsspec

from ._exceptions import InputDataError, StorageError
from .settings import BUCKETS

TEMP_PREFIX = ".tmp-"
"""Objects whose name starts with this are incomplete writes, never listed."""

_CHUNK = 1 << 20


class Storage:
    """The buckets of one workspace, rooted at a URL."""

    def __init__(self, root_url: str) -> None:
        self.root_url = root_url.rstrip("/")
        try:
            self.fs, self._root_path = fsspec.core.url_to_fs(self.root_url)
        except (ImportError, ValueError) as exc:
            raise StorageError(f"cannot open storage root {self.root_url}: {exc}") from exc
        self._protocol = self.root_url.split("://", 1)[0] if "://" in self.root_url else "file"
        self._is_local = self._protocol == "file"

    # -- naming ---------------------------------------------------------------

    def url(self, bucket: str, key: str) -> str:
        """The URL of ``key`` in ``bucket``; keys keep their folders."""
        self._check_bucket(bucket)
        return f"{self.root_url}/{bucket}/{clean_key(key)}"

    def bucket_name(self, bucket: str) -> str:
        """The name by which events (and DataBrew-like outputs) call a bucket."""
        self._check_bucket(bucket)
        return bucket

    def bucket_from_name(self, name: str) -> str:
        """The bucket an event's bucket name refers to."""
        if name in BUCKETS:
            return name
        raise InputDataError(
            f"bucket {name!r} is not one of this workspace's buckets ({', '.join(BUCKETS)})"
        )

    def split(self, url: str) -> tuple[str, str]:
        """Split a location into (bucket, key); the location must be under the root."""
        prefix = self.root_url + "/"
        if not url.startswith(prefix):
            raise StorageError(f"{url} is not inside this workspace's storage ({self.root_url})")
        bucket, _, key = url[len(prefix) :].partition("/")
        self._check_bucket(bucket)
        if not key:
            raise StorageError(f"{url} names a bucket, not an object")
        return bucket, key

    def _check_bucket(self, bucket: str) -> None:
        if bucket not in BUCKETS:
            raise StorageError(f"unknown bucket {bucket!r}; buckets are {', '.join(BUCKETS)}")

    def _path(self, url: str) -> str:
        bucket, key = self.split(url)
        return f"{self._root_path}/{bucket}/{key}"

    # -- setup ----------------------------------------------------------------

    def ensure_buckets(self) -> None:
        """Create the bucket folders (a no-op where buckets already exist)."""
        for bucket in BUCKETS:
            try:
                self.fs.makedirs(f"{self._root_path}/{bucket}", exist_ok=True)
            except OSError as exc:
                raise StorageError(
                    f"cannot create bucket {bucket} under {self.root_url}: {exc}"
                ) from exc

    # -- reading --------------------------------------------------------------

    def exists(self, url: str) -> bool:
        """Whether an object exists at ``url``."""
        return bool(self.fs.exists(self._path(url)))

    def read_bytes(self, url: str) -> bytes:
        """The whole content of a (small) object."""
        try:
            data: bytes = self.fs.cat_file(self._path(url))
        except FileNotFoundError as exc:
            raise StorageError(f"object {url} does not exist") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {url}: {exc}") from exc
        return data

    @contextlib.contextmanager
    def open_read(self, url: str) -> Iterator[IO[bytes]]:
        """A binary file object streaming the object's content."""
        try:
            handle = self.fs.open(self._path(url), "rb")
        except FileNotFoundError as exc:
            raise StorageError(f"object {url} does not exist") from exc
        except OSError as exc:
            raise StorageError(f"cannot open {url}: {exc}") from exc
        with handle:
            yield handle

    @contextlib.contextmanager
    def local_path(self, url: str) -> Iterator[Path]:
        """A local file path holding the object (the object itself where local)."""
        if self._is_local:
            path = Path(self._path(url))
            if not path.is_file():
                raise StorageError(f"object {url} does not exist")
            yield path
            return
        import tempfile

        with tempfile.TemporaryDirectory(prefix="carbonlake-") as tmp:
            target = Path(tmp) / PurePosixPath(self.split(url)[1]).name
            with self.open_read(url) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
            yield target

    def sha256(self, url: str) -> str:
        """Hex SHA-256 of an object's content, streamed."""
        digest = hashlib.sha256()
        with self.open_read(url) as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def size(self, url: str) -> int:
        """Size of an object in bytes."""
        try:
            return int(self.fs.size(self._path(url)))
        except FileNotFoundError as exc:
            raise StorageError(f"object {url} does not exist") from exc

    def modified(self, url: str) -> float:
        """Modification time of an object (seconds since the epoch)."""
        try:
            info = self.fs.info(self._path(url))
        except FileNotFoundError as exc:
            raise StorageError(f"object {url} does not exist") from exc
        for field in ("mtime", "LastModified", "last_modified", "created"):
            value = info.get(field)
            if value is None:
                continue
            return float(value.timestamp()) if hasattr(value, "timestamp") else float(value)
        return 0.0

    def local_bucket_path(self, bucket: str) -> Path | None:
        """The local folder of a bucket, or None when buckets are not local folders."""
        self._check_bucket(bucket)
        if not self._is_local:
            return None
        return Path(f"{self._root_path}/{bucket}")

    def list(self, bucket: str, prefix: str = "") -> list[str]:
        """URLs of the complete objects under ``prefix`` in ``bucket``, sorted."""
        self._check_bucket(bucket)
        base = f"{self._root_path}/{bucket}"
        prefix = prefix.strip("/")
        where = f"{base}/{clean_key(prefix)}" if prefix else base
        try:
            found = self.fs.find(where)
        except FileNotFoundError:
            return []
        urls = []
        for path in sorted(found):
            relative = str(path)[len(base) + 1 :] if str(path).startswith(base) else str(path)
            if PurePosixPath(relative).name.startswith(TEMP_PREFIX):
                continue
            urls.append(f"{self.root_url}/{bucket}/{relative}")
        return urls

    # -- writing --------------------------------------------------------------

    @contextlib.contextmanager
    def open_write(self, url: str) -> Iterator[IO[bytes]]:
        """A binary file object whose content appears at ``url`` only once closed."""
        final = self._path(url)
        parent, _, name = final.rpartition("/")
        temp = f"{parent}/{TEMP_PREFIX}{uuid.uuid4().hex}-{name}"
        try:
            self.fs.makedirs(parent, exist_ok=True)
            handle: Any = self.fs.open(temp, "wb")
        except OSError as exc:
            raise StorageError(f"cannot write {url}: {exc}") from exc
        try:
            with handle:
                yield handle
            self.fs.mv(temp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                self.fs.rm(temp)
            raise

    def write_bytes(self, url: str, data: bytes) -> None:
        """Write a whole object atomically."""
        with self.open_write(url) as handle:
            handle.write(data)

    def put_file(self, source: Path, url: str) -> None:
        """Copy a local file into storage atomically, streaming it."""
        try:
            with source.open("rb") as src, self.open_write(url) as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
        except FileNotFoundError as exc:
            raise InputDataError(f"input file {source} does not exist") from exc
        except IsADirectoryError as exc:
            raise InputDataError(f"input {source} is a directory; give a CSV file") from exc

    def move(self, url: str, bucket: str) -> str:
        """Move an object to another bucket under the same key; returns its new URL.

        Local moves are a rename, so the object is always in exactly one bucket.
        """
        _, key = self.split(url)
        target = self.url(bucket, key)
        try:
            self.fs.makedirs(self._path(target).rpartition("/")[0], exist_ok=True)
            self.fs.mv(self._path(url), self._path(target))
        except FileNotFoundError as exc:
            raise StorageError(f"cannot move {url}: it does not exist") from exc
        except OSError as exc:
            raise StorageError(f"cannot move {url} to {target}: {exc}") from exc
        return target

    def delete(self, url: str) -> None:
        """Delete an object if it exists."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self._path(url))


def clean_key(key: str) -> str:
    """Validate an object key: relative, no ``..``, no control characters."""
    if not key or key.startswith("/") or "\\" in key:
        raise InputDataError(f"object key {key!r} must be a relative path like 'dir/file.csv'")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InputDataError(f"object key {key!r} must not contain empty, '.' or '..' parts")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise InputDataError(f"object key {key!r} contains control characters")
    return key
