"""Celery tasks for inventory. None yet: the stock projector arrives with a later issue."""
