"""Validators of the host-and-wallet observables: Bitcoin and Ethereum addresses, file paths.

Each function returns the normalized value or raises ``ValueError`` saying what is wrong;
``normalize`` wraps them as ``InvalidIOCError``.  A Bitcoin address is only accepted with
a valid checksum (Base58Check for legacy ``1...``/``3...`` addresses, BIP 173 / BIP 350 for
``bc1...``), so random base58-looking words are not taken for wallets.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["btc_address", "eth_address", "file_path"]

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_CONST, _BECH32M_CONST = 1, 0x2BC830A3
_ETH = re.compile(r"0x[0-9a-fA-F]{40}")
_WINDOWS = re.compile(
    r"(?:[A-Za-z]:|%[A-Za-z_][A-Za-z0-9_()]*%|\\\\[\w.$-]+)(?:\\[^\\/:*?\"<>|\r\n]+)+\\?")
_UNIX = re.compile(r"(?:/[\w.@+-]+){2,}/?|/(?:etc|tmp|var|usr|opt|home|root|dev|bin|sbin|lib)/?")


def _base58check(value: str) -> bool:
    number = 0
    for char in value:
        if char not in _B58_INDEX:
            return False
        number = number * 58 + _B58_INDEX[char]
    raw = number.to_bytes(25, "big") if number < 1 << 200 else b""
    if len(raw) != 25:
        return False
    digest = hashlib.sha256(hashlib.sha256(raw[:-4]).digest()).digest()
    return raw[-4:] == digest[:4] and raw[0] in (0x00, 0x05)


def _polymod(values: list[int]) -> int:
    generator = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            check ^= generator[i] if (top >> i) & 1 else 0
    return check


def _bech32(value: str) -> bool:
    text = value.lower()
    hrp, _, data = text.rpartition("1")
    if hrp != "bc" or not 6 <= len(data) <= 87 or any(c not in _BECH32 for c in data):
        return False
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    return _polymod(expanded + [_BECH32.index(c) for c in data]) in (
        _BECH32_CONST, _BECH32M_CONST)


def btc_address(value: str) -> str:
    """A Bitcoin address with a valid checksum: legacy/P2SH kept as is, bech32 lowercased."""
    if value[:3].lower() == "bc1":
        if value != value.lower() and value != value.upper():
            raise ValueError("bech32 addresses are all lower or all upper case")
        if not _bech32(value):
            raise ValueError("bad bech32 checksum or characters")
        return value.lower()
    if value[:1] not in ("1", "3") or not 26 <= len(value) <= 35:
        raise ValueError("expected 1..., 3... (26-35 base58 characters) or bc1...")
    if not _base58check(value):
        raise ValueError("bad Base58Check checksum")
    return value


def eth_address(value: str) -> str:
    """An Ethereum address: ``0x`` and 40 hex digits, lowercased."""
    if not _ETH.fullmatch(value):
        raise ValueError("expected 0x followed by 40 hex digits")
    return value.lower()


def file_path(value: str) -> str:
    """A Windows (``C:\\...``, ``%APPDATA%\\...``, ``\\\\host\\share\\...``) or Unix path."""
    if not (_WINDOWS.fullmatch(value) or _UNIX.fullmatch(value)):
        raise ValueError("expected C:\\..., %VAR%\\..., \\\\host\\share\\... or /dir/...")
    return value
