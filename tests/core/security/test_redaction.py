"""Sources and PII stay out of reprs and displays unless a role may see them."""

from __future__ import annotations

import phantom_notebook as pn
from phantom_notebook.core.security.redaction import MASK, redact


def test_nested_sensitive_fields_are_masked_and_the_rest_kept() -> None:
    payload = {"ioc": {"value": "203.0.113.5", "Source": "informant-7"},
               "sightings": [{"reporter": "j.doe@corp.example", "count": 3}]}
    assert redact(payload) == {"ioc": {"value": "203.0.113.5", "Source": MASK},
                               "sightings": [{"reporter": MASK, "count": 3}]}
    assert redact(payload, reveal=True) is payload


def test_an_envelope_repr_shows_the_payload_shape_never_its_content() -> None:
    env = pn.Envelope(id="01J", type="ioc.enrichment.request", queue="q",
                      payload={"source": "informant-7", "ioc": "203.0.113.5"})
    text = repr(env)
    assert "informant-7" not in text and "203.0.113.5" not in text
    assert "payload=<dict, 2 keys>" in text
