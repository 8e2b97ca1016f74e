"""Celery tasks for orders. None yet: order writes are synchronous and record their events in
the outbox; the relay that publishes them arrives with a later issue."""
