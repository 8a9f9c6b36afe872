"""Runnable examples of phantom_notebook in asyncio services (exercised by tests/examples)."""
