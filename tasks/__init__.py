"""The Celery app and thin task functions."""
