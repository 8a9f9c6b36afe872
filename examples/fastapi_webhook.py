"""A FastAPI webhook that turns SIEM alerts into queued ``alert.threat.notification`` messages.

    uvicorn examples.fastapi_webhook:app --port 8000          # embedded Redis
    PHANTOM_REDIS_URL=redis://localhost:6379/0 uvicorn examples.fastapi_webhook:app

``POST /webhook/alerts`` validates the alert against the message catalog, extracts the
indicators named in its text, and publishes it with the alert's TLP (default AMBER) at the
catalog's priority; it answers ``202`` with the message id. ``GET /healthz`` is the
deployment's health report for the alert queue: ``200`` when it is OK or WARN (a WARN is
information for people, not a reason for a load balancer to drop this instance), ``503``
when it is CRITICAL or Redis cannot be reached.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

import phantom_notebook as pn
from phantom_notebook.core.observe.health import HealthThresholds
from phantom_notebook.intel import CATALOG, extract_iocs
from phantom_notebook.intel.producers import ioc_payload

ALERT_TYPE = "alert.threat.notification"


class SiemAlert(BaseModel):
    """What the SIEM posts."""

    title: str = Field(min_length=1)
    severity: Literal["critical", "high", "medium", "low", "info"]
    description: str = ""
    source: str = "siem"
    tlp: Literal["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"] = "AMBER"
    alert_id: str | None = None
    tags: list[str] = Field(default_factory=list)


def create_app(url: str | None = None, queue: str = "alerts",
               thresholds: HealthThresholds | None = None, **connect: Any) -> FastAPI:
    """The app, publishing to ``queue`` on ``url`` (None: ``$PHANTOM_REDIS_URL`` or the
    embedded Redis); ``thresholds`` tune ``/healthz``; ``connect`` goes to
    ``pn.aio.connect`` (``key_prefix``, ``origin``, ``settings``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.mq = await pn.aio.connect(url or os.environ.get("PHANTOM_REDIS_URL"),
                                            **connect)
        try:
            yield
        finally:
            await app.state.mq.close()

    app = FastAPI(title="phantom_notebook SIEM webhook", lifespan=lifespan)

    @app.post("/webhook/alerts", status_code=202)
    async def receive_alert(alert: SiemAlert, request: Request) -> dict[str, Any]:
        mq = request.app.state.mq
        text = f"{alert.title}\n{alert.description}"
        iocs = extract_iocs(text, tlp=alert.tlp, source=alert.source)
        spec = CATALOG.get(ALERT_TYPE)
        payload = CATALOG.validate_outgoing(ALERT_TYPE, {
            "alert_id": alert.alert_id or f"siem-{uuid.uuid4().hex[:12]}",
            "severity": alert.severity, "title": alert.title,
            "description": alert.description, "category": alert.source,
            "related_iocs": [ioc_payload(i) for i in iocs], "tags": alert.tags})
        try:
            message_id = await mq.publish(queue, ALERT_TYPE, payload, tlp=alert.tlp,
                                          priority=spec.priority,
                                          dedup_key=f"alert:{payload['alert_id']}")
        except pn.QueueFullError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from exc
        return {"id": message_id, "queue": queue, "alert_id": payload["alert_id"],
                "iocs": [i.value for i in iocs]}

    @app.get("/healthz")
    async def healthz(request: Request) -> JSONResponse:
        try:
            report = await request.app.state.mq.health([queue], thresholds=thresholds)
        except pn.ConnectionLostError as exc:
            return JSONResponse({"status": "critical", "error": str(exc)}, status_code=503)
        status = report.status
        return JSONResponse(
            {"status": status,
             "checks": [{"name": c.name, "status": c.status, "message": c.message}
                        for c in report.checks]},
            status_code=503 if status == "critical" else 200)

    return app


app = create_app()
