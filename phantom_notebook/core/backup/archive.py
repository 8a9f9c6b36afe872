"""The backup archive format (version 1): zstd-compressed, length-prefixed records, HMACed.

Layout of a file::

    b"PNBACKUP" | u8 format version | zstd stream of records
    record  := u32 BE length of meta | u32 BE length of blob | meta (JSON object) | blob

``meta["t"]`` names the record: ``archive`` (first: the manifest), ``queue``, ``partition``,
then pages of messages — ``entry`` (stream entries: ready or in flight), ``delayed``,
``dead`` (dead letters), each up to one Redis page (1,000) of messages with per-message
columns in meta (``lens`` their envelope lengths) and the envelopes concatenated in the
blob, exactly as Redis stores them (sealed when the queue encrypts) — then ``dedup``,
``audit``, with ``seal`` records every ``SEAL_EVERY`` records or ``SEAL_BYTES`` bytes, and
``end`` last. The archive never holds keys, and plaintext only where the queue stored it.

Integrity: HMAC-SHA256 (key: HKDF of the backup key, else the audit key) over the magic,
the version and every record's bytes in order. A ``seal`` carries the MAC of everything
before it, ``end`` the MAC of the whole archive and the record counts, so a reader checks
each segment before using it (a restore holds one segment, at most ~``SEAL_BYTES``, in
memory) and detects truncation, reordering, insertion and any changed byte. Memory is
constant in the archive's size on both sides.
"""

from __future__ import annotations

import hmac
import io
import os
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
import zstandard
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import ArchiveError
from ..security.keyring import SecretKey

MAGIC = b"PNBACKUP"
FORMAT = 1
SEAL_EVERY = 2000
SEAL_BYTES = 8 * 2**20
#: record kinds that are pages of messages (meta columns + concatenated envelopes)
PAGES = ("entry", "delayed", "dead")
_LENGTHS = struct.Struct(">II")
_MAX_META = 16 * 2**20
_MAX_BLOB = 512 * 2**20


def mac_key(key: SecretKey) -> bytes:
    """The archive MAC key derived from a backup (or audit) key."""
    return HKDF(hashes.SHA256(), 32, None, b"phantom-notebook backup mac v1").derive(key.reveal())


class ArchiveWriter:
    """Write records to ``path`` (via ``<path>.part``, renamed once complete).

    Use as a context manager: a body that raises leaves no archive under ``path``.
    """

    def __init__(self, path: str | os.PathLike[str], key: SecretKey, *, level: int = 1) -> None:
        self.path = Path(path)
        self._part = self.path.with_name(self.path.name + ".part")
        self._file: IO[bytes] = open(self._part, "wb")  # noqa: SIM115 - closed in close()/abort()
        self._file.write(MAGIC + bytes([FORMAT]))
        self._mac = hmac.new(mac_key(key), MAGIC + bytes([FORMAT]), "sha256")
        # level 1, one thread: sealed envelopes are random bytes (level 3 saves <1 % on them
        # and costs 2.6x the time); zstd's worker threads would buffer ~60 MiB of jobs
        self._zstd = zstandard.ZstdCompressor(level=level).stream_writer(self._file,
                                                                         closefd=False)
        self.key_id = key.key_id
        self.records = 0
        self.counts: dict[str, int] = {}
        self.raw_bytes = 0
        self._closed = False
        self._buf = bytearray()  # records not yet MACed and compressed (one call per 64 KiB)
        self._since = 0  # records since the last seal
        self._sealed_at = 0  # raw bytes at the last seal

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._closed:
            return
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, kind: str, meta: Mapping[str, Any], blob: bytes = b"",
              items: int = 1) -> None:
        """Append one record of ``kind`` holding ``items`` messages (or other items); a seal
        follows every ``SEAL_EVERY`` records or ``SEAL_BYTES`` bytes."""
        self._put({"t": kind, **meta}, blob)
        self.counts[kind] = self.counts.get(kind, 0) + items
        self._since += 1
        if self._since >= SEAL_EVERY or self.raw_bytes - self._sealed_at >= SEAL_BYTES:
            self._put({"t": "seal", "n": self.records, "mac": self._digest()})
            self._since, self._sealed_at = 0, self.raw_bytes

    def _put(self, meta: Mapping[str, Any], blob: bytes = b"") -> None:
        head = orjson.dumps(meta)
        buf = self._buf
        buf += _LENGTHS.pack(len(head), len(blob))
        buf += head
        buf += blob
        self.records += 1
        self.raw_bytes += _LENGTHS.size + len(head) + len(blob)
        if len(buf) >= 1 << 16:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self._mac.update(self._buf)
            self._zstd.write(self._buf)
            self._buf = bytearray()

    def _digest(self) -> str:
        self._flush()
        return self._mac.copy().hexdigest()

    def close(self, **summary: Any) -> Path:
        """Write the ``end`` record, flush, fsync and move the archive to its name."""
        self._put({"t": "end", "n": self.records, "counts": self.counts, **summary,
                   "mac": self._digest()})
        self._flush()
        self._zstd.flush(zstandard.FLUSH_FRAME)
        self._zstd.close()  # type: ignore[no-untyped-call]
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._part, self.path)
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Drop the partial archive."""
        self._closed = True
        try:
            self._file.close()
        finally:
            self._part.unlink(missing_ok=True)


@dataclass
class Record:
    """One record read back: its kind, its meta fields and its blob."""

    kind: str
    meta: dict[str, Any]
    blob: bytes = b""

    @property
    def count(self) -> int:
        """Items in the record: messages of a page, keys of a dedup record, else 1."""
        if self.kind in PAGES:
            return len(self.meta["lens"])
        return len(self.meta["fields"]) if self.kind == "dedup" else 1

    def envelopes(self) -> list[bytes]:
        """The envelopes of a page record, in order."""
        out, at = [], 0
        blob = self.blob
        for n in self.meta["lens"]:
            out.append(blob[at:at + n])
            at += n
        return out


@dataclass
class ArchiveSummary:
    """What a verified archive holds (``verify_archive``)."""

    path: str
    manifest: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)
    queues: dict[str, dict[str, int]] = field(default_factory=dict)
    records: int = 0
    compressed_bytes: int = 0
    #: stream entries some consumer group had received (restored first, as pending)
    received: int = 0

    @property
    def messages(self) -> int:
        """Stored messages in the archive (stream entries, delayed and dead letters)."""
        return sum(self.counts.get(k, 0) for k in ("entry", "delayed", "dead"))


class ArchiveReader:
    """Read an archive record by record, checking its HMAC as it goes."""

    def __init__(self, path: str | os.PathLike[str], key: SecretKey | None) -> None:
        self.path = Path(path)
        self._key = key
        #: the end record's fields, once ``segments`` has read it
        self.trailer: dict[str, Any] = {}

    def _open(self) -> tuple[IO[bytes], Any]:
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - closed by the caller
        except OSError as exc:
            raise ArchiveError(f"cannot open backup archive {str(self.path)!r}: "
                               f"{exc.strerror or exc}") from None
        head = f.read(len(MAGIC) + 1)
        if head[:len(MAGIC)] != MAGIC:
            f.close()
            raise ArchiveError(f"{str(self.path)!r} is not a phantom_notebook backup archive")
        if head[len(MAGIC)] > FORMAT:
            f.close()
            raise ArchiveError(f"{str(self.path)!r} is archive format {head[len(MAGIC)]}; this "
                               f"phantom_notebook reads format {FORMAT}: upgrade it to restore")
        mac = hmac.new(mac_key(self._key), head, "sha256") if self._key else None
        return f, mac

    def manifest(self) -> dict[str, Any]:
        """The first record (the manifest), read without checking the HMAC."""
        f, _ = self._open()
        with f:
            for record, _raw in _records(f, self.path):
                if record.kind != "archive":
                    break
                return record.meta
        raise ArchiveError(f"{str(self.path)!r} has no manifest: not a complete archive")

    def segments(self) -> Iterator[list[Record]]:
        """The data records, one verified segment at a time (each ends at a seal).

        A segment is yielded only after its seal's MAC matched; the last one after the
        ``end`` record matched. Raises ``ArchiveError`` at the first mismatch.
        """
        if self._key is None:
            raise ArchiveError("verifying an archive needs its key ($PHANTOM_BACKUP_KEY or "
                               "the audit key it was made with)")
        f, mac = self._open()
        with f:
            pending: list[Record] = []
            n = 0
            ended = False
            for record, raw in _records(f, self.path):
                if ended:
                    raise ArchiveError(f"{str(self.path)!r} has data after its end record")
                if record.kind in ("seal", "end"):
                    want = mac.copy().hexdigest()
                    if not hmac.compare_digest(want, str(record.meta.get("mac", ""))) \
                            or record.meta.get("n") != n:
                        manifest = pending[0].meta if pending and pending[0].kind == "archive" \
                            else {}
                        kid = manifest.get("key_id")
                        hint = (f" (it was made with key {kid!r}, this is "
                                f"{self._key.key_id!r})" if kid and kid != self._key.key_id
                                else "")
                        raise ArchiveError(
                            f"backup archive {str(self.path)!r} does not verify at record "
                            f"{n:,}: it was changed after it was written, or the key is not "
                            f"the one it was made with{hint}")
                    ended = record.kind == "end"
                    if ended:
                        self.trailer = record.meta
                    mac.update(raw)
                    n += 1
                    yield pending
                    pending = []
                    continue
                mac.update(raw)
                n += 1
                pending.append(record)
            if not ended:
                raise ArchiveError(f"backup archive {str(self.path)!r} is truncated after "
                                   f"{n:,} records (no end record): refused")

    def records(self) -> Iterator[Record]:
        """Every data record, in order, each segment verified before it is yielded."""
        for segment in self.segments():
            yield from segment


def _records(f: IO[bytes], path: Path) -> Iterator[tuple[Record, bytes]]:
    reader = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)
    buf = io.BufferedReader(reader, buffer_size=1 << 20)
    try:
        while True:
            head = buf.read(_LENGTHS.size)
            if not head:
                return
            if len(head) < _LENGTHS.size:
                raise ArchiveError(f"backup archive {str(path)!r} is truncated mid-record")
            mlen, blen = _LENGTHS.unpack(head)
            if mlen > _MAX_META or blen > _MAX_BLOB:
                raise ArchiveError(f"backup archive {str(path)!r} is damaged: a record claims "
                                   f"{mlen + blen:,} bytes")
            body = buf.read(mlen + blen)
            if len(body) < mlen + blen:
                raise ArchiveError(f"backup archive {str(path)!r} is truncated mid-record")
            try:
                meta = orjson.loads(body[:mlen])
            except orjson.JSONDecodeError:
                raise ArchiveError(f"backup archive {str(path)!r} is damaged: a record "
                                   "header is not JSON") from None
            if not isinstance(meta, dict) or not isinstance(meta.get("t"), str):
                raise ArchiveError(f"backup archive {str(path)!r} is damaged: a record has "
                                   "no kind")
            yield Record(meta.pop("t"), meta, body[mlen:]), head + body
    except zstandard.ZstdError as exc:
        raise ArchiveError(f"backup archive {str(path)!r} is damaged (zstd: {exc})") from None


def verify_archive(path: str | os.PathLike[str], key: SecretKey) -> ArchiveSummary:
    """Check a whole archive without Redis: format, every seal, the end record, counts."""
    reader = ArchiveReader(path, key)
    summary = ArchiveSummary(str(path), {})
    for record in reader.records():
        summary.records += 1
        n = record.count
        if record.kind in PAGES and sum(record.meta["lens"]) != len(record.blob):
            raise ArchiveError(f"backup archive {str(path)!r} is damaged: a page's lengths do "
                               "not add up to its envelopes")
        summary.counts[record.kind] = summary.counts.get(record.kind, 0) + n
        if record.kind == "archive":
            summary.manifest = record.meta
        queue = record.meta.get("queue")
        if record.kind == "entry":
            summary.received += len(record.meta.get("recv") or {})
        if isinstance(queue, str) and record.kind in PAGES:
            per = summary.queues.setdefault(queue, {})
            per[record.kind] = per.get(record.kind, 0) + n
    want = reader.trailer.get("counts", {})
    got = dict(summary.counts)
    if want != got:
        raise ArchiveError(f"backup archive {str(path)!r} does not hold what its end record "
                           f"lists ({want} != {got})")
    summary.compressed_bytes = Path(path).stat().st_size
    return summary


__all__ = ["FORMAT", "MAGIC", "PAGES", "SEAL_BYTES", "SEAL_EVERY", "ArchiveReader",
           "ArchiveSummary", "ArchiveWriter", "Record", "mac_key", "verify_archive"]
