"""The threat-intelligence layer: IOCs, TLP 2.0, the message catalog, producers, consumers.

Import/export helpers (STIX 2.1, CSV, MISP) load lazily so ``import phantom_notebook.intel``
does not import ``stix2``.
"""

from __future__ import annotations

from typing import Any

from .catalog import CATALOG, Catalog, MessageSpec, SchemaValidationError
from .consumers import (
    AlertDistributionConsumer,
    DataIngestionConsumer,
    DataValidationConsumer,
    Enricher,
    IOCEnrichmentConsumer,
    JsonlFileSink,
    RedisChannelSink,
    ThreatAnalysisConsumer,
    WebhookSink,
)
from .defang import defang, refang
from .ioc import DEFAULT_CONFIDENCE, DEFAULT_TLP, IOC, detect_type, validate
from .ioc_extract import FILE_EXTENSION_TLDS, extract_iocs
from .normalize import InvalidIOCError, IOCType, known_tlds
from .pipeline import ScoringRun, Verdict, enrich_and_score, subscribe_scoring
from .producers import (
    AlertProducer,
    DataIngestionProducer,
    IOCMessageProducer,
    SystemProducer,
    ThreatAnalysisProducer,
)
from .tlp import TLP, InvalidTLPError

_LAZY = {
    "iocs_from_text": "exchange", "iocs_from_csv": "exchange", "iocs_from_misp": "exchange",
    "read_indicators": "exchange", "to_csv": "exchange", "to_misp_event": "exchange",
    "publish_indicators": "exchange", "iocs_from_stix": "stix", "to_stix_bundle": "stix",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CATALOG", "DEFAULT_CONFIDENCE", "DEFAULT_TLP", "FILE_EXTENSION_TLDS", "IOC", "TLP",
    "AlertDistributionConsumer", "AlertProducer", "DataIngestionConsumer",
    "DataIngestionProducer", "DataValidationConsumer", "Enricher", "IOCEnrichmentConsumer",
    "IOCMessageProducer", "IOCType", "InvalidIOCError", "InvalidTLPError", "JsonlFileSink",
    "Catalog", "MessageSpec", "RedisChannelSink", "SchemaValidationError", "ScoringRun",
    "SystemProducer", "ThreatAnalysisConsumer", "ThreatAnalysisProducer", "Verdict",
    "WebhookSink", "defang", "detect_type", "enrich_and_score", "extract_iocs", "known_tlds",
    "refang", "subscribe_scoring", "validate", *_LAZY,
]
