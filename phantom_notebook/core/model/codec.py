"""Codecs turn envelopes into stored bytes and back.

``PlainCodec`` frames the orjson payload in clear. The security layer adds a sealing codec
(AES-256-GCM with the header as associated data) with the same two methods, so queues and
workers never care which one is in use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import orjson

from ..errors import DecodeError
from .envelope import Envelope, decode, encode_payload, frame, unframe


class Codec(Protocol):
    """Turns an envelope into wire bytes and back; ``open`` raises ``DecodeError``."""

    def seal(self, env: Envelope, max_payload_bytes: int) -> bytes:
        """Encode ``env``; raise ``PayloadError`` if its payload is unusable."""
        ...

    def open(self, raw: bytes) -> Envelope:
        """Decode wire bytes; raise ``DecodeError`` with a reason when impossible."""
        ...


class PlainCodec:
    """Payload in clear (orjson), header as canonical JSON."""

    def seal(self, env: Envelope, max_payload_bytes: int) -> bytes:
        """Encode ``env`` with its payload in clear."""
        return frame(env.header(), encode_payload(env.payload, max_payload_bytes))

    def new_sealer(self, n: int) -> Callable[[dict[str, Any], bytes], bytes]:
        """Frames the new messages of a publish batch: ``(header, encoded payload)``."""
        return frame

    def open(self, raw: bytes) -> Envelope:
        """Decode an unencrypted envelope."""
        return decode(raw)

    def reseal(self, raw: bytes, env: Envelope) -> bytes:
        """Re-encode ``env`` (a decoded copy of ``raw`` with changed header fields)."""
        _, _, body = unframe(raw)
        return frame(env.header(), body)


def peek_header(raw: bytes) -> dict[str, object]:
    """The clear header of stored bytes, without decrypting; ``{}`` when unreadable."""
    try:
        return unframe(raw)[1]
    except DecodeError:
        return {}


def payload_json(env: Envelope) -> bytes:
    """The payload of ``env`` as JSON bytes (for display and export)."""
    return orjson.dumps(env.payload)
