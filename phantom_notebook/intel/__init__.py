"""The threat-intelligence layer: IOCs (extraction, defang/refang, validation) and TLP 2.0."""

from __future__ import annotations

from .defang import defang, refang
from .ioc import DEFAULT_CONFIDENCE, DEFAULT_TLP, IOC, detect_type, validate
from .ioc_extract import FILE_EXTENSION_TLDS, extract_iocs
from .normalize import InvalidIOCError, IOCType, known_tlds
from .tlp import TLP, InvalidTLPError

__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_TLP",
    "FILE_EXTENSION_TLDS",
    "IOC",
    "IOCType",
    "InvalidIOCError",
    "InvalidTLPError",
    "TLP",
    "defang",
    "detect_type",
    "extract_iocs",
    "known_tlds",
    "refang",
    "validate",
]
