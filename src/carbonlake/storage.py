"""Object storage: the pipeline's buckets, addressed by fsspec URLs.

Only this module talks to fsspec. Each bucket has a base URL: on the embedded
default a folder of the workspace (``file:///abs/ws/landing``), on S3 a bucket or
a prefix of one (``s3://acme-landing`` or ``s3://acme-carbon/landing``), set by
``[storage] root`` (one URL, a prefix per bucket) or per bucket
(``[storage] landing = "s3://..."``). S3-compatible servers are reached with
``[storage] endpoint_url``; credentials come from the usual AWS chain.

Objects become visible only when complete: local writes go to a hidden
temporary name and are renamed into place; an S3 object appears only when its
(multipart) upload completes. A move is a rename on a local disk and copy,
verify, delete elsewhere, so an object is never lost between buckets.

An input, once landed, is never overwritten (as with S3 versioning): an object is
landed and moved to raw or error under its own key when that key is free, and
otherwise under a *version key*, the key with the first 16 hex digits of the
object's SHA-256 before its extension (``fleet.csv`` -> ``fleet.3f2a9c1d0b7e4a1f.csv``;
``fleet.3f2a9c1d0b7e4a1f-2.csv`` for a second copy of the same bytes in flight). On
local folders the claim of a key is atomic (a hard link that fails when the name
exists); on S3 it is a check before the write.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import IO, Any

import fsspec

from ._exceptions import (
    ConfigurationError,
    CopyMismatch,
    InputDataError,
    ObjectMissing,
    StorageError,
    StorageUnavailable,
)
from .settings import BUCKETS

TEMP_PREFIX = ".tmp-"
"""Objects whose name starts with this are incomplete writes, never listed."""

_CHUNK = 1 << 20
"""Streamed reads and copies go this many bytes at a time."""

_UPLOAD_PART = 8 << 20
_UPLOAD_PARTS_AT_ONCE = 8
"""A large upload's parts: 8 MiB, eight at a time. On SeaweedFS a 147 MB file took 0.74x
and 0.94x the time of s3fs's default (50 MiB parts) in two runs of
``python -m benchmarks.objects`` (docs/performance.md)."""

VERSIONED_BUCKETS = ("landing", "raw", "error")
"""The buckets an input file passes through; one key names one version in all three."""

_MAX_COPIES = 1000


class Storage:
    """The buckets of one workspace, each at a base URL."""

    def __init__(
        self,
        root_url: str = "",
        *,
        buckets: Mapping[str, str] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        bases = {b: f"{root_url.rstrip('/')}/{b}" for b in BUCKETS} if root_url else {}
        for bucket, url in (buckets or {}).items():
            if url:
                bases[bucket] = url.rstrip("/")
        missing = [b for b in BUCKETS if b not in bases]
        if missing:
            raise ConfigurationError(
                f"no storage location for bucket(s) {', '.join(missing)}: set [storage] root "
                "or a URL per bucket"
            )
        self.root_url = root_url.rstrip("/")
        self._bases = bases
        self._former: list[tuple[str, str]] = []
        """(former base URL, bucket) of a moved workspace (see add_former_root)."""
        self._options = dict(options or {})
        self._fs: dict[str, Any] = {}
        self._arrow: Any = None
        self._sources: dict[str, tuple[Path, str, int, int]] = {}
        """Objects this process uploaded from a local file: URL -> (file, SHA-256, size,
        mtime_ns), so that :meth:`local_path` need not download them again."""
        self._paths: dict[str, str] = {}
        for bucket, base in bases.items():
            protocol = base.split("://", 1)[0] if "://" in base else "file"
            try:
                fs, path = fsspec.core.url_to_fs(base, **self._fs_options(protocol))
            except (ImportError, ValueError) as exc:
                hint = " (pip install 'carbonlake[s3]')" if protocol == "s3" else ""
                raise ConfigurationError(
                    f"cannot open storage {base} for bucket {bucket}: {exc}{hint}"
                ) from exc
            self._fs[bucket] = fs
            self._paths[bucket] = path.rstrip("/")

    def _fs_options(self, protocol: str) -> dict[str, Any]:
        if protocol != "s3":
            return {}
        options: dict[str, Any] = {"use_listings_cache": False}
        client: dict[str, Any] = {}
        if self._options.get("endpoint_url"):
            client["endpoint_url"] = self._options["endpoint_url"]
        if self._options.get("region"):
            client["region_name"] = self._options["region"]
        if client:
            options["client_kwargs"] = client
        return options

    def filesystem(self, bucket: str) -> Any:
        """The fsspec filesystem of a bucket (for engines that read through fsspec)."""
        self._check_bucket(bucket)
        return self._fs[bucket]

    def read_filesystem(self, bucket: str) -> Any:
        """An fsspec filesystem for an engine that reads a bucket's objects through
        fsspec (DuckDB's ``register_filesystem``). On S3, pyarrow's own S3 client behind
        fsspec's ``ArrowFSWrapper``: DuckDB reads a Parquet file in many ranged reads, and
        those took about half the time of s3fs's (docs/performance.md). Elsewhere the
        bucket's own filesystem."""
        self._check_bucket(bucket)
        if not self._is_s3(bucket):
            return self._fs[bucket]
        from fsspec.implementations.arrow import ArrowFSWrapper

        return ArrowFSWrapper(self._arrow_s3())

    def _is_s3(self, bucket: str) -> bool:
        return self._bases[bucket].startswith(("s3://", "s3a://"))

    def _arrow_s3(self) -> Any:
        """pyarrow's S3 filesystem (the AWS C++ SDK) with this storage's endpoint and
        region; the credentials come from the usual AWS chain, as s3fs's do. Reads of many
        small objects through it cost about a third of s3fs's CPU (docs/performance.md);
        writes stay on s3fs (on SeaweedFS pyarrow's puts cost more, and its concurrent
        multipart parts were refused)."""
        if self._arrow is None:
            from pyarrow import fs as arrow_fs

            options: dict[str, Any] = {}
            if self._options.get("endpoint_url"):
                options["endpoint_override"] = str(self._options["endpoint_url"])
            if self._options.get("region"):
                options["region"] = str(self._options["region"])
            self._arrow = arrow_fs.S3FileSystem(**options)
        return self._arrow

    def iceberg_properties(self) -> dict[str, str]:
        """FileIO properties for pyiceberg: on a local folder pyarrow's (pyiceberg's default
        for ``file://``), on S3 fsspec's, with the S3-compatible endpoint and region (the
        credentials come from the usual AWS chain)."""
        if self.is_local("lake"):
            # pyiceberg's fsspec FileIO imports requests and the REST catalog (about
            # 0.12 s of every commit); a commit reads Parquet footers with pyarrow anyway.
            return {"py-io-impl": "pyiceberg.io.pyarrow.PyArrowFileIO"}
        # Through fsspec (s3fs), like every other object carbonlake writes.
        properties: dict[str, str] = {"py-io-impl": "pyiceberg.io.fsspec.FsspecFileIO"}
        if self._options.get("endpoint_url"):
            properties["s3.endpoint"] = str(self._options["endpoint_url"])
        if self._options.get("region"):
            properties["s3.region"] = str(self._options["region"])
        return properties

    def is_local(self, bucket: str) -> bool:
        """Whether a bucket is a folder on this machine."""
        return self._bases[bucket].startswith("file://") or "://" not in self._bases[bucket]

    # -- naming ---------------------------------------------------------------

    def url(self, bucket: str, key: str) -> str:
        """The URL of ``key`` in ``bucket``; keys keep their folders."""
        self._check_bucket(bucket)
        return f"{self._bases[bucket]}/{clean_key(key)}"

    def bucket_name(self, bucket: str) -> str:
        """The name by which events and DataBrew-like outputs call a bucket: the folder
        name locally, the S3 bucket's name on S3."""
        self._check_bucket(bucket)
        if self.is_local(bucket):
            return bucket
        return self._bases[bucket].split("://", 1)[1].split("/", 1)[0]

    def location(self, url: str) -> tuple[str, str]:
        """``(bucket name, object key)`` of a URL, as S3 events and DataBrew name objects."""
        bucket, key = self.split(url)
        if self.is_local(bucket):
            return bucket, key
        after = self._bases[bucket].split("://", 1)[1]
        prefix = after.split("/", 1)[1] + "/" if "/" in after else ""
        return self.bucket_name(bucket), prefix + key

    def url_of(self, bucket_name: str, object_key: str) -> str:
        """The URL of an object named as an event or DataBrew names it.

        A bucket's own name comes first (on S3 the key then includes a bucket URL's
        prefix, as S3 sends it); :attr:`landing_bucket_name` names the landing bucket
        with keys relative to its URL.
        """
        for bucket in BUCKETS:
            if self.bucket_name(bucket) != bucket_name:
                continue
            if self.is_local(bucket):
                return self.url(bucket, object_key)
            candidate = f"{self._bases[bucket].split('://', 1)[0]}://{bucket_name}/{object_key}"
            try:
                self.split(candidate)
            except StorageError:
                continue
            return candidate
        if bucket_name == self.landing_bucket_name:
            return self.url("landing", object_key)
        names = sorted({self.bucket_name(b) for b in BUCKETS} | {self.landing_bucket_name})
        raise InputDataError(
            f"bucket {bucket_name!r} with key {object_key!r} is not in this workspace's "
            f"storage (buckets: {', '.join(names)}); if events call the landing bucket "
            f"{bucket_name!r}, set [storage] landing_bucket_name = {bucket_name!r} "
            "(CARBONLAKE_STORAGE__LANDING_BUCKET_NAME)"
        )

    def add_former_root(self, former_root: str) -> None:
        """Resolve locations written under ``former_root`` (where a moved or restored
        workspace used to be) in the buckets under this storage's root instead.

        Stored locations keep the URL they were written with (lineage hashes cover
        them); reading one goes to the same bucket and key here.
        """
        former_root = former_root.rstrip("/")
        if not self.root_url or not former_root or former_root == self.root_url:
            return
        for bucket in BUCKETS:
            if self._bases[bucket] == f"{self.root_url}/{bucket}":
                self._former.append((f"{former_root}/{bucket}", bucket))

    def current_url(self, url: str) -> str:
        """A stored location as it is now (under this storage's root)."""
        bucket, key = self.split(url)
        return self.url(bucket, key)

    @property
    def landing_bucket_name(self) -> str:
        """The bucket name by which events mean the landing bucket (besides its own name):
        ``[storage] landing_bucket_name``, else the last segment of the landing URL."""
        configured = str(self._options.get("landing_bucket_name") or "")
        return configured or self._bases["landing"].rstrip("/").rsplit("/", 1)[-1]

    def split(self, url: str) -> tuple[str, str]:
        """Split a location into (bucket, key); the location must be in a bucket (or in
        one of a moved workspace's former buckets)."""
        best = None
        for bucket, base in [*self._bases.items(), *((b, f) for f, b in self._former)]:
            if url.startswith(base + "/") and (best is None or len(base) > len(best[1])):
                best = (bucket, base)
        if best is None:
            raise StorageError(f"{url} is not inside this workspace's storage")
        key = url[len(best[1]) + 1 :]
        if not key:
            raise StorageError(f"{url} names a bucket, not an object")
        return best[0], key

    def _check_bucket(self, bucket: str) -> None:
        if bucket not in BUCKETS:
            raise StorageError(f"unknown bucket {bucket!r}; buckets are {', '.join(BUCKETS)}")

    def _where(self, url: str) -> tuple[Any, str, str]:
        """(filesystem, path, bucket) of a URL."""
        bucket, key = self.split(url)
        return self._fs[bucket], f"{self._paths[bucket]}/{key}", bucket

    def _path(self, url: str) -> str:
        return self._where(url)[1]

    # -- setup ----------------------------------------------------------------

    def ensure_buckets(self) -> None:
        """Create the bucket folders, or the S3 buckets, that do not exist yet."""
        for bucket in BUCKETS:
            fs, path = self._fs[bucket], self._paths[bucket]
            try:
                if self.is_local(bucket):
                    fs.makedirs(path, exist_ok=True)
                else:
                    name = path.split("/", 1)[0]
                    if not fs.exists(name):
                        fs.mkdir(name)
            except FileExistsError:
                continue
            except OSError as exc:
                raise StorageUnavailable(
                    f"cannot create bucket {bucket} at {self._bases[bucket]}: {exc}"
                ) from exc

    # -- reading --------------------------------------------------------------

    def exists(self, url: str) -> bool:
        """Whether an object exists at ``url``."""
        fs, path, _ = self._where(url)
        try:
            return bool(fs.exists(path))
        except OSError as exc:
            raise StorageUnavailable(f"cannot tell whether {url} exists: {exc}") from exc

    def read_bytes(self, url: str) -> bytes:
        """The whole content of a (small) object."""
        try:
            fs, path, _ = self._where(url)
            data: bytes = fs.cat_file(path)
        except FileNotFoundError as exc:
            raise ObjectMissing(f"object {url} does not exist") from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {url}: {exc}") from exc
        return data

    def read_range(self, url: str, start: int, end: int) -> bytes:
        """The bytes ``[start, end)`` of an object (one ranged request on an object store;
        fewer at its end)."""
        try:
            fs, path, _ = self._where(url)
            data: bytes = fs.cat_file(path, start=start, end=end)
        except FileNotFoundError as exc:
            raise ObjectMissing(f"object {url} does not exist") from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {url}: {exc}") from exc
        return data

    def read_many(self, urls: Sequence[str]) -> list[bytes]:
        """The whole contents of several (small) objects, in order.

        On S3 they are fetched concurrently through pyarrow's S3 client (``_READERS`` at a
        time), which spares one round trip per object and costs less CPU per object than
        s3fs; on another object store through fsspec's bulk ``cat``; on a local disk one
        by one.
        Raises :class:`ObjectMissing` naming the first object that does not exist.
        """
        found: dict[str, bytes] = {}
        for bucket, members in _by_bucket(self, urls).items():
            if self.is_local(bucket) or len(members) == 1:
                found.update((url, self.read_bytes(url)) for url in members)
                continue
            if self._is_s3(bucket):
                found.update(zip(members, self._read_concurrently(members), strict=True))
                continue
            paths = {self._path(url): url for url in members}  # another fsspec store
            try:
                got = self._fs[bucket].cat(list(paths), on_error="return")
            except OSError as exc:
                raise StorageUnavailable(
                    f"cannot read {len(members)} objects of {self._bases[bucket]}: {exc}"
                ) from exc
            for path, url in paths.items():
                value = got.get(path)
                if isinstance(value, FileNotFoundError) or value is None:
                    raise ObjectMissing(f"object {url} does not exist")
                if isinstance(value, BaseException):
                    raise StorageUnavailable(f"cannot read {url}: {value}") from value
                found[url] = value
        return [found[url] for url in urls]

    def _read_concurrently(self, urls: Sequence[str]) -> list[bytes]:
        arrow = self._arrow_s3()

        def read(url: str) -> bytes:
            try:
                with arrow.open_input_stream(self._path(url)) as handle:
                    data: bytes = handle.read()
            except FileNotFoundError as exc:
                raise ObjectMissing(f"object {url} does not exist") from exc
            except OSError as exc:
                raise StorageUnavailable(f"cannot read {url}: {exc}") from exc
            return data

        return list(_readers().map(read, urls))

    @contextlib.contextmanager
    def open_read(self, url: str) -> Iterator[IO[bytes]]:
        """A binary file object streaming the object's content."""
        try:
            fs, path, _ = self._where(url)
            handle = fs.open(path, "rb")
        except FileNotFoundError as exc:
            raise ObjectMissing(f"object {url} does not exist") from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot open {url}: {exc}") from exc
        with handle:
            yield handle

    @contextlib.contextmanager
    def local_path(self, url: str) -> Iterator[Path]:
        """A local file path holding the object (the object itself where local)."""
        if self.is_local(self.split(url)[0]):
            path = Path(self._path(url))
            if not path.is_file():
                raise ObjectMissing(f"object {url} does not exist")
            yield path
            return
        source = self._unchanged_source(url)
        if source is not None:
            # The local file this process uploaded (put_new) instead of a download of it.
            # It must still hold the bytes that landed: checked after it was read, and
            # the move out of landing verifies its copy against the same SHA-256.
            path, sha256 = source
            yield path
            if file_sha256(path) != sha256:
                raise InputDataError(
                    f"{path} changed while carbonlake was reading it for {url}, which holds "
                    "the file as it was uploaded; run the file again once it is complete"
                )
            return
        with tempfile.TemporaryDirectory(prefix="carbonlake-") as tmp:
            target = Path(tmp) / PurePosixPath(self.split(url)[1]).name
            with self.open_read(url) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
            yield target

    def _unchanged_source(self, url: str) -> tuple[Path, str] | None:
        """The local file and SHA-256 an object was uploaded from by :meth:`put_new`,
        when the file still has the size and modification time it had then."""
        known = self._sources.get(url)
        if known is None:
            return None
        path, sha256, size, mtime_ns = known
        try:
            now = path.stat()
        except OSError:
            return None
        if (now.st_size, now.st_mtime_ns) != (size, mtime_ns):
            return None
        return path, sha256

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
            fs, path, _ = self._where(url)
            return int(fs.size(path))
        except FileNotFoundError as exc:
            raise ObjectMissing(f"object {url} does not exist") from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot read the size of {url}: {exc}") from exc

    def modified(self, url: str) -> float:
        """Modification time of an object (seconds since the epoch)."""
        try:
            fs, path, _ = self._where(url)
            info = fs.info(path)
        except FileNotFoundError as exc:
            raise ObjectMissing(f"object {url} does not exist") from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot read the details of {url}: {exc}") from exc
        for field in ("mtime", "LastModified", "last_modified", "created"):
            value = info.get(field)
            if value is None:
                continue
            return float(value.timestamp()) if hasattr(value, "timestamp") else float(value)
        return 0.0

    def local_bucket_path(self, bucket: str) -> Path | None:
        """The local folder of a bucket, or None when buckets are not local folders."""
        self._check_bucket(bucket)
        if not self.is_local(bucket):
            return None
        return Path(self._paths[bucket])

    def list(self, bucket: str, prefix: str = "") -> list[str]:
        """URLs of the complete objects under ``prefix`` in ``bucket``, sorted.

        On S3 the listing is paginated by s3fs and never cached, so a poller sees
        new objects.
        """
        self._check_bucket(bucket)
        fs, base = self._fs[bucket], self._paths[bucket]
        prefix = prefix.strip("/")
        where = f"{base}/{clean_key(prefix)}" if prefix else base
        try:
            found = fs.find(where)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageUnavailable(f"cannot list {self._bases[bucket]}/{prefix}: {exc}") from exc
        urls = []
        for path in sorted(found):
            text = str(path)
            relative = text[len(base) + 1 :] if text.startswith(base + "/") else text
            if PurePosixPath(relative).name.startswith(TEMP_PREFIX):
                continue
            urls.append(f"{self._bases[bucket]}/{relative}")
        return urls

    # -- writing --------------------------------------------------------------

    @contextlib.contextmanager
    def open_write(self, url: str) -> Iterator[IO[bytes]]:
        """A binary file object whose content appears at ``url`` only once closed."""
        fs, final, bucket = self._where(url)
        if not self.is_local(bucket):
            # An S3 object appears only when its (multipart) upload completes.
            try:
                remote: Any = fs.open(final, "wb")
            except OSError as exc:
                raise StorageUnavailable(f"cannot write {url}: {exc}") from exc
            try:
                with remote:
                    yield remote
            except OSError as exc:
                raise StorageUnavailable(f"cannot write {url}: {exc}") from exc
            return
        parent, _, name = final.rpartition("/")
        temp = f"{parent}/{TEMP_PREFIX}{uuid.uuid4().hex}-{name}"
        try:
            fs.makedirs(parent, exist_ok=True)
            handle: Any = fs.open(temp, "wb")
        except OSError as exc:
            raise StorageUnavailable(f"cannot write {url}: {exc}") from exc
        try:
            with handle:
                yield handle
            fs.mv(temp, final)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                fs.rm(temp)
            if isinstance(exc, OSError):
                raise StorageUnavailable(f"cannot write {url}: {exc}") from exc
            raise

    def write_bytes(self, url: str, data: bytes) -> None:
        """Write a whole object atomically."""

        def write() -> None:
            with self.open_write(url) as handle:
                handle.write(data)

        write()

    def write_many(self, objects: Sequence[tuple[str, bytes]]) -> None:
        """Write several whole objects, each atomically, as :meth:`write_bytes` does.

        On an object store they are uploaded concurrently (fsspec's bulk ``pipe``: one
        PUT each, so each appears only once complete), which spares one round trip per
        object; on a local disk each is written and renamed into place in turn.
        """
        data = dict(objects)
        for bucket, members in _by_bucket(self, list(data)).items():
            if self.is_local(bucket) or len(members) == 1:
                for url in members:
                    self.write_bytes(url, data[url])
                continue
            try:
                self._fs[bucket].pipe({self._path(url): data[url] for url in members})
            except OSError as exc:
                raise StorageUnavailable(
                    f"cannot write {len(members)} objects to {self._bases[bucket]} "
                    f"(the first {members[0]}): {exc}"
                ) from exc

    def put_file(self, source: Path, url: str) -> None:
        """Copy a local file into storage atomically, streaming it. To an object store
        through the filesystem's own upload (s3fs: a multipart upload of ``_UPLOAD_PART``
        parts, ``_UPLOAD_PARTS_AT_ONCE`` at a time; the object appears when it
        completes)."""
        bucket = self.split(url)[0]

        def write() -> None:
            if not self.is_local(bucket):
                if not source.is_file():
                    source.open("rb").close()  # the same errors as a local copy's
                try:
                    self._fs[bucket].put_file(
                        str(source),
                        self._path(url),
                        chunksize=_UPLOAD_PART,
                        max_concurrency=_UPLOAD_PARTS_AT_ONCE,
                    )
                except OSError as exc:
                    raise StorageUnavailable(f"cannot write {url}: {exc}") from exc
                return
            with source.open("rb") as src, self.open_write(url) as dst:
                shutil.copyfileobj(src, dst, _CHUNK)

        try:
            write()
        except FileNotFoundError as exc:
            raise InputDataError(f"input file {source} does not exist") from exc
        except IsADirectoryError as exc:
            raise InputDataError(f"input {source} is a directory; give a CSV file") from exc

    def put_new(self, source: Path, bucket: str, key: str, sha256: str) -> str:
        """Land a local file under ``key``, or under a version key when an object is
        there already; never overwrites one. Returns the URL it landed at."""
        for candidate in version_keys(key, lambda: sha256):
            url = self.url(bucket, candidate)
            if self.exists(url):
                continue
            if not self.is_local(bucket):
                before = source.stat() if source.is_file() else None
                self.put_file(source, url)
                if before is not None:
                    self._sources[url] = (source, sha256, before.st_size, before.st_mtime_ns)
                return url
            try:
                self._put_exclusive(source, url)
            except FileExistsError:
                continue
            return url
        raise StorageError(f"no free version of {key} in {bucket} after {_MAX_COPIES} tries")

    def _put_exclusive(self, source: Path, url: str) -> None:
        """Copy a local file to a local bucket; FileExistsError if the name is taken."""
        final = self._path(url)
        parent, _, name = final.rpartition("/")
        temp = f"{parent}/{TEMP_PREFIX}{uuid.uuid4().hex}-{name}"
        try:
            os.makedirs(parent, exist_ok=True)
            with source.open("rb") as src, open(temp, "wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
            os.link(temp, final)  # atomic: fails when another writer got there first
        except (FileExistsError, InputDataError):
            raise
        except FileNotFoundError as exc:
            raise InputDataError(f"input file {source} does not exist") from exc
        except IsADirectoryError as exc:
            raise InputDataError(f"input {source} is a directory; give a CSV file") from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot write {url}: {exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp)

    def move_version(
        self,
        url: str,
        bucket: str,
        *,
        sha256: str | None = None,
        verify: Callable[[str], str] | None = None,
    ) -> str:
        """Move an input object on to ``bucket`` without overwriting another version:
        under its key when no other object of landing, raw or error holds that key
        (an object of the target bucket with the same bytes may be replaced), else
        under a version key. Returns its new URL. ``sha256``: the object's as the
        caller knows it (a copy is verified against it); ``verify``: see :meth:`move`."""
        url = self.current_url(url)  # a moved workspace's stored location, as it is now
        source_bucket, key = self.split(url)
        if not self.exists(url):
            raise ObjectMissing(f"cannot move {url}: it does not exist")
        digest: list[str] = [sha256] if sha256 else []

        def own_sha256() -> str:
            if not digest:
                digest.append(self.sha256(url))
            return digest[0]

        local = self.is_local(source_bucket) and self.is_local(bucket)
        for candidate in version_keys(key, own_sha256):
            target = self.url(bucket, candidate)
            if self._taken(target, candidate, exclude=url, sha256=own_sha256):
                continue
            if not local:
                return self.move(url, bucket, key=candidate, sha256=own_sha256, verify=verify)
            if self._rename_exclusive(url, target, own_sha256):
                return target
        raise StorageError(f"no free version of {key} in {bucket} after {_MAX_COPIES} tries")

    def _taken(self, target: str, key: str, *, exclude: str, sha256: Callable[[], str]) -> bool:
        """Whether ``key`` names another version of an input in landing, raw or error
        (the object being moved, and one with its bytes at ``target``, do not count)."""
        for bucket in VERSIONED_BUCKETS:
            other = self.url(bucket, key)
            if other == exclude or not self.exists(other):
                continue
            if other == target and self.sha256(other) == sha256():
                continue
            return True
        return False

    def _rename_exclusive(self, url: str, target: str, sha256: Callable[[], str]) -> bool:
        """Rename a local object to ``target``; False when another object got there
        first (one with the same bytes is replaced)."""
        source_path, target_path = self._path(url), self._path(target)
        try:
            os.makedirs(target_path.rpartition("/")[0], exist_ok=True)
            try:
                os.link(source_path, target_path)
            except FileExistsError:
                if sha256() != self.sha256(target):
                    return False
                os.replace(source_path, target_path)
                return True
            os.unlink(source_path)
        except FileNotFoundError as exc:
            raise ObjectMissing(f"cannot move {url}: it does not exist") from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot move {url} to {target}: {exc}") from exc
        return True

    def move(
        self,
        url: str,
        bucket: str,
        *,
        key: str | None = None,
        sha256: Callable[[], str] | None = None,
        verify: Callable[[str], str] | None = None,
    ) -> str:
        """Move an object to another bucket under the same key; returns its new URL.

        A rename where both buckets are local folders; otherwise copy, verify (size
        and SHA-256), then delete, so the object is in exactly one bucket when done.
        ``key`` gives it another key in the target bucket; ``sha256`` the original's
        SHA-256 as already known (else it is read); ``verify`` reads the copy's SHA-256
        from its URL instead of :meth:`sha256` (a caller that wants more of that read).
        A copy that does not match raises :class:`CopyMismatch`.
        """
        self._sources.pop(url, None)  # a move ends what put_new knew of the object
        source_bucket, source_key = self.split(url)
        target = self.url(bucket, key or source_key)
        fs, path, _ = self._where(url)
        target_fs, target_path, _ = self._where(target)
        try:
            if self.is_local(source_bucket) and self.is_local(bucket):
                fs.makedirs(target_path.rpartition("/")[0], exist_ok=True)
                fs.mv(path, target_path)
                return target
            if not fs.exists(path):
                raise FileNotFoundError(path)
            was_there = target_fs.exists(target_path)  # an object with the same bytes
            if fs is target_fs:
                fs.copy(path, target_path)
            else:
                with self.open_read(url) as src, self.open_write(target) as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
            original = sha256() if sha256 else self.sha256(url)
            check = verify or self.sha256
            if self.size(url) != self.size(target) or original != check(target):
                if not was_there:  # the object stays in exactly one bucket: the original's
                    with contextlib.suppress(OSError):
                        target_fs.rm(target_path)
                raise CopyMismatch(
                    f"copy of {url} to {target} does not match the original; the original is kept"
                )
            fs.rm(path)
        except FileNotFoundError as exc:
            raise ObjectMissing(f"cannot move {url}: it does not exist") from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot move {url} to {target}: {exc}") from exc
        return target

    def delete(self, url: str) -> None:
        """Delete an object if it exists."""
        self._sources.pop(url, None)
        fs, path, _ = self._where(url)
        try:
            fs.rm(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageUnavailable(f"cannot delete {url}: {exc}") from exc


_READERS = 16
"""Objects read at once by :meth:`Storage.read_many` on an object store."""


@functools.cache
def _readers() -> ThreadPoolExecutor:
    """The threads of :meth:`Storage.read_many` (pyarrow releases the GIL while it reads)."""
    return ThreadPoolExecutor(_READERS, thread_name_prefix="carbonlake-read")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a local file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _by_bucket(storage: Storage, urls: Sequence[str]) -> dict[str, list[str]]:
    """URLs grouped by their bucket, in order within each."""
    grouped: dict[str, list[str]] = {}
    for url in urls:
        grouped.setdefault(storage.split(url)[0], []).append(url)
    return grouped


def version_key(key: str, sha256: str, copy: int = 1) -> str:
    """The key of one version of an object: the first 16 hex digits of its SHA-256
    before the extension (``a/fleet.csv`` -> ``a/fleet.<sha16>.csv``), with ``-N``
    for the N-th copy of the same bytes."""
    path = PurePosixPath(key)
    suffix = path.suffix if path.suffix != path.name else ""
    stem = path.name[: len(path.name) - len(suffix)]
    tag = sha256[:16] + (f"-{copy}" if copy > 1 else "")
    return str(path.with_name(f"{stem}.{tag}{suffix}"))


def version_keys(key: str, sha256: Callable[[], str]) -> Iterator[str]:
    """The keys an input may take, in order: its own, then its version keys (the hash
    is asked for only when the key itself is taken)."""
    yield key
    for copy in range(1, _MAX_COPIES):
        yield version_key(key, sha256(), copy)


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
