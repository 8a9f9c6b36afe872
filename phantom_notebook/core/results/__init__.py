"""Results, progress and workflows: request/reply with stored results, fan-out/fan-in
groups and chains (``mq.request``, ``mq.group``, ``mq.chain``)."""
