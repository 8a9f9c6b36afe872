"""phantom_notebook for asyncio services (FastAPI, aiohttp, SOAR steps).

```python
import phantom_notebook as pn

mq = await pn.aio.connect("redis://localhost:6379/0")
await mq.publish("alerts", "alert.threat.notification", {...})
```

``connect`` returns an ``AsyncMessageQueue``: ``publish``, ``publish_batch``,
``publish_stream`` (an async iterable in), ``request`` (``await`` the handle for the
result), ``subscribe`` and ``worker()`` (``async with mq.worker():`` or
``await worker.run()``; async handlers run on the caller's loop), ``dlq()``, ``stats()``
and ``health()``. The envelopes and Redis Functions are those of the synchronous API, so
sync and async producers and consumers interoperate on one queue.
"""

from __future__ import annotations

from .queue import AsyncDeadLetterQueue, AsyncMessageQueue, connect
from .results import AsyncPendingResult
from .worker import AsyncWorker

__all__ = ["AsyncDeadLetterQueue", "AsyncMessageQueue", "AsyncPendingResult", "AsyncWorker",
           "connect"]
