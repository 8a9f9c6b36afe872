"""Named AES-256 keys for sealed envelopes: one active key encrypts, the others only decrypt.

Where keys come from (``KeyRing.from_env`` combines them)::

    PHANTOM_KEYS="k2:<base64>,k1:<base64>"   id:key pairs, comma separated
    PHANTOM_ACTIVE_KEY=k2                    the key that encrypts
    PHANTOM_KEY_FILE=/etc/phantom/keys       a key file; its keys join those of PHANTOM_KEYS

The active key is ``PHANTOM_ACTIVE_KEY``, else the file's ``active`` line, else the first
key listed (``PHANTOM_KEYS`` first, then the file). The key file is text, one entry per
line, and must be readable by its owner only (mode 0600 or stricter)::

    # phantom_notebook keys -- comments and blank lines are ignored
    active 2026-11-27a
    2026-11-27a <base64 of 32 bytes>
    k1 <base64 of 32 bytes>

Key ids: 1-32 characters of ``A-Z a-z 0-9 . _ -``, starting with a letter or digit
(``active`` is reserved). Keys: standard or URL-safe base64, padding optional, exactly 32
bytes once decoded. Every problem raises ``ConfigError`` naming the key id, never its
material; ``repr``/``str`` of ``SecretKey`` and ``KeyRing`` show ids only.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NoReturn

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import ConfigError

KEY_BYTES = 32
ENV_KEYS = "PHANTOM_KEYS"
ENV_ACTIVE = "PHANTOM_ACTIVE_KEY"
ENV_KEY_FILE = "PHANTOM_KEY_FILE"
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_RESERVED_IDS = frozenset({"active"})


def generate_key() -> str:
    """Return a fresh random 32-byte key, base64-encoded (for ``PHANTOM_KEYS`` or a file)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def check_key_id(key_id: object, field: str = "key id") -> str:
    """Return ``key_id`` if it is a usable key id; ``ConfigError`` otherwise.

    The rejected value is not echoed: a swapped ``<base64>:<id>`` pair would leak the key.
    """
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id) \
            or key_id in _RESERVED_IDS:
        raise ConfigError(field, "the key id is not usable",
                          "1-32 of A-Z a-z 0-9 . _ -, starting with a letter or digit")
    return key_id


def decode_key(text: str, key_id: str, field: str) -> bytes:
    """Decode base64 key ``text`` to exactly 32 bytes; the error never echoes ``text``."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        material = base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(field, f"key {key_id!r} is not valid base64") from None
    if len(material) != KEY_BYTES:
        raise ConfigError(field, f"key {key_id!r} decodes to {len(material)} bytes, "
                                 f"need exactly {KEY_BYTES}")
    return material


class SecretKey:
    """A 32-byte key with its id; its ``repr`` and ``str`` never show the key material."""

    __slots__ = ("key_id", "_material")

    def __init__(self, key_id: str, material: bytes, *, field: str = "key") -> None:
        self.key_id = check_key_id(key_id, field)
        if not isinstance(material, bytes | bytearray) or len(material) != KEY_BYTES:
            size = len(material) if isinstance(material, bytes | bytearray) else "?"
            raise ConfigError(field, f"key {key_id!r} is {size} bytes, need exactly "
                                     f"{KEY_BYTES}")
        self._material = bytes(material)

    @classmethod
    def from_base64(cls, key_id: str, text: str, *, field: str = "key") -> SecretKey:
        """Build a key from its base64 text (standard or URL-safe, padding optional)."""
        return cls(check_key_id(key_id, field), decode_key(text, key_id, field), field=field)

    def reveal(self) -> bytes:
        """The raw key bytes: hand them to a cipher, never to a log."""
        return self._material

    def to_base64(self) -> str:
        """The key as standard base64 (what key files and ``PHANTOM_KEYS`` hold)."""
        return base64.b64encode(self._material).decode("ascii")

    def __repr__(self) -> str:
        return f"SecretKey(id={self.key_id!r}, ***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretKey):
            return NotImplemented
        return self.key_id == other.key_id and hmac.compare_digest(self._material,
                                                                   other._material)

    def __hash__(self) -> int:
        return hash(("SecretKey", self.key_id))

    def __reduce__(self) -> NoReturn:
        raise TypeError("SecretKey cannot be pickled: keys stay out of pickles and caches")


class KeyRing:
    """Named AES-256-GCM keys: the active one seals, every one opens. Immutable."""

    __slots__ = ("_keys", "_aead", "_active")

    def __init__(self, keys: Iterable[SecretKey], active: str | None = None) -> None:
        ordered = list(keys)
        if not ordered:
            raise ConfigError("keys", "the key ring is empty: give at least one key")
        self._keys: dict[str, SecretKey] = {}
        for key in ordered:
            if not isinstance(key, SecretKey):
                raise ConfigError("keys", f"expected SecretKey, got {type(key).__name__}")
            if key.key_id in self._keys:
                raise ConfigError("keys", f"key id {key.key_id!r} is listed twice")
            self._keys[key.key_id] = key
        chosen = ordered[0].key_id if active is None else active
        if chosen not in self._keys:
            raise ConfigError("active key", f"{chosen!r} is not one of the keys",
                              ", ".join(self._keys))
        self._active = chosen
        # one cipher object per key, built once: sealing builds nothing per message
        self._aead = {kid: AESGCM(key.reveal()) for kid, key in self._keys.items()}

    # -- use -------------------------------------------------------------------------------

    @property
    def active_id(self) -> str:
        """The id of the key that seals new messages."""
        return self._active

    @property
    def active_aead(self) -> AESGCM:
        """The cipher of the active key."""
        return self._aead[self._active]

    @property
    def ids(self) -> tuple[str, ...]:
        """Every key id, in order (the active one wherever it was listed)."""
        return tuple(self._keys)

    def aead(self, key_id: str) -> AESGCM | None:
        """The cipher of ``key_id``, or None when the ring does not hold it."""
        return self._aead.get(key_id)

    def key(self, key_id: str) -> SecretKey:
        """The ``SecretKey`` called ``key_id``; ``KeyError`` if absent."""
        return self._keys[key_id]

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeyRing(active={self._active!r}, ids={list(self._keys)!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("KeyRing cannot be pickled: keys stay out of pickles and caches")

    # -- rotation --------------------------------------------------------------------------

    def rotate(self, new_id: str, key: bytes | str | None = None) -> KeyRing:
        """A new ring where ``new_id`` (random unless ``key`` is given) seals; old keys open.

        ``key`` may be 32 raw bytes or their base64. Re-encrypt stored messages with
        ``SealingCodec.reseal``, then ``drop`` the old id once nothing uses it.
        """
        check_key_id(new_id, "new key id")
        if new_id in self._keys:
            raise ConfigError("new key id", f"{new_id!r} is already in the key ring")
        if key is None:
            material = os.urandom(KEY_BYTES)
        elif isinstance(key, str):
            material = decode_key(key, new_id, "new key")
        else:
            material = key
        fresh = SecretKey(new_id, material, field="new key")
        return KeyRing([fresh, *self._keys.values()], active=new_id)

    def drop(self, key_id: str) -> KeyRing:
        """A new ring without ``key_id`` (never the active key): retire a rotated-out key."""
        if key_id not in self._keys:
            raise ConfigError("key id", f"{key_id!r} is not in the key ring",
                              ", ".join(self._keys))
        if key_id == self._active:
            raise ConfigError("key id", f"{key_id!r} is the active key: rotate first")
        return KeyRing([k for k in self._keys.values() if k.key_id != key_id], self._active)

    # -- loading and saving ------------------------------------------------------------------

    @classmethod
    def from_base64(cls, pairs: Mapping[str, str] | Iterable[tuple[str, str]],
                    active: str | None = None) -> KeyRing:
        """Build a ring from ``{id: base64}`` (or pairs); the first is active by default."""
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        return cls([SecretKey.from_base64(kid, text) for kid, text in items], active)

    @classmethod
    def parse(cls, spec: str, active: str | None = None) -> KeyRing:
        """Build a ring from the ``PHANTOM_KEYS`` format: ``"k2:<base64>,k1:<base64>"``."""
        return cls(_parse_spec(spec), active)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, insecure_ok: bool = False,
                  active: str | None = None) -> KeyRing:
        """Load a key file (format in the module docstring); refuses group/world access."""
        keys, file_active = _read_key_file(Path(path), insecure_ok)
        return cls(keys, active or file_active)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *,
                 insecure_ok: bool = False) -> KeyRing | None:
        """The ring described by ``PHANTOM_KEYS``/``_ACTIVE_KEY``/``_KEY_FILE``; None if unset."""
        env = os.environ if environ is None else environ
        spec = env.get(ENV_KEYS, "").strip()
        path = env.get(ENV_KEY_FILE, "").strip()
        active = env.get(ENV_ACTIVE, "").strip() or None
        if not spec and not path:
            if active:
                raise ConfigError(ENV_ACTIVE, f"is set but neither {ENV_KEYS} nor "
                                              f"{ENV_KEY_FILE} is")
            return None
        keys = _parse_spec(spec) if spec else []
        if path:
            file_keys, file_active = _read_key_file(Path(path), insecure_ok)
            keys += file_keys
            active = active or file_active
        return cls(keys, active)

    def write_key_file(self, path: str | os.PathLike[str]) -> None:
        """Write the ring to ``path`` with mode 0600, atomically (temp file, then rename)."""
        target = Path(path)
        lines = ["# phantom_notebook keys: keep this file mode 0600",
                 f"active {self._active}"]
        lines += [f"{kid} {key.to_base64()}" for kid, key in self._keys.items()]
        fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=".pn-keys-")
        try:
            with os.fdopen(fd, "w", encoding="ascii") as out:
                os.fchmod(out.fileno(), 0o600)
                out.write("\n".join(lines) + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _parse_spec(spec: str) -> list[SecretKey]:
    keys = []
    for n, item in enumerate(filter(None, (p.strip() for p in spec.split(","))), 1):
        kid, sep, text = item.partition(":")
        if not sep:
            raise ConfigError(ENV_KEYS, f"entry {n} is not '<id>:<base64>'")
        keys.append(SecretKey.from_base64(kid.strip(), text, field=f"{ENV_KEYS} entry {n}"))
    return keys


def _read_key_file(path: Path, insecure_ok: bool) -> tuple[list[SecretKey], str | None]:
    field = f"key file {path}"
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise ConfigError(field, f"cannot be opened ({exc.strerror})") from None
    info = os.fstat(fd)  # before fdopen, which refuses a directory with IsADirectoryError
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ConfigError(field, "is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        loose = stat.S_IMODE(info.st_mode) & 0o077
        if loose and os.name == "posix" and not insecure_ok:
            raise ConfigError(field, f"is accessible to group or others (mode "
                                     f"{stat.S_IMODE(info.st_mode):04o})",
                              "chmod 600, or insecure_ok=True for throwaway keys")
        data = handle.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(field, "is not UTF-8 text") from None
    keys: list[SecretKey] = []
    active: str | None = None
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) != 2:
            _bad_line(field, n)
        if parts[0] == "active":
            if active is not None:
                raise ConfigError(field, f"line {n}: a second 'active' line")
            active = check_key_id(parts[1], f"{field} line {n}")
        else:
            keys.append(SecretKey.from_base64(parts[0], parts[1], field=f"{field} line {n}"))
    return keys, active


def _bad_line(field: str, n: int) -> NoReturn:
    # the line itself is not shown: it may hold key material
    raise ConfigError(field, f"line {n} is not '<id> <base64>' or 'active <id>'")


__all__ = ["KEY_BYTES", "KeyRing", "SecretKey", "check_key_id", "decode_key", "generate_key"]
