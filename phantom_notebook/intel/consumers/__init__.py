"""Built-in consumers: enrichment, validation/ingestion, threat analysis, alert distribution.

Each is a handler class (``handle(message, context)``) to pass to ``mq.subscribe``, or call
its ``subscribe()`` to register it for its message types on their default queues.
"""

from __future__ import annotations

from phantom_notebook.intel.consumers.alerts import AlertDistributionConsumer
from phantom_notebook.intel.consumers.analysis import ThreatAnalysisConsumer, risk_level, risk_score
from phantom_notebook.intel.consumers.base import Consumer, SchemaRejected
from phantom_notebook.intel.consumers.enrichers import (
    SPECIAL_RANGES,
    DomainEnricher,
    Enricher,
    HashEnricher,
    IPEnricher,
    RelationshipEnricher,
    classify_ip,
)
from phantom_notebook.intel.consumers.enrichment import (
    EnrichmentFailedError,
    IOCEnrichmentConsumer,
    default_enrichers,
)
from phantom_notebook.intel.consumers.feeds import (
    FeedEntry,
    FeedReputation,
    ReputationFeed,
    load_feed,
    parse_feodo_json,
    parse_threatfox_csv,
    parse_urlhaus_csv,
    sample_feeds,
)
from phantom_notebook.intel.consumers.sinks import (
    AlertDeliveryError,
    AlertSink,
    JsonlFileSink,
    RedisChannelSink,
    WebhookSink,
)
from phantom_notebook.intel.consumers.validation import (
    DataIngestionConsumer,
    DataValidationConsumer,
    validate_value,
)

__all__ = [
    "SPECIAL_RANGES",
    "AlertDeliveryError",
    "AlertDistributionConsumer",
    "AlertSink",
    "Consumer",
    "DataIngestionConsumer",
    "DataValidationConsumer",
    "DomainEnricher",
    "Enricher",
    "EnrichmentFailedError",
    "FeedEntry",
    "FeedReputation",
    "HashEnricher",
    "IOCEnrichmentConsumer",
    "IPEnricher",
    "JsonlFileSink",
    "RedisChannelSink",
    "RelationshipEnricher",
    "ReputationFeed",
    "SchemaRejected",
    "ThreatAnalysisConsumer",
    "WebhookSink",
    "classify_ip",
    "default_enrichers",
    "load_feed",
    "parse_feodo_json",
    "parse_threatfox_csv",
    "parse_urlhaus_csv",
    "risk_level",
    "risk_score",
    "sample_feeds",
    "validate_value",
]
