"""The webhook ingress: check, deduplicate and route GoTo notifications to Celery queues.

``create_app(settings)`` (in :mod:`worker.ingress.app`) is the ASGI app;
``callworker ingress`` serves it with uvicorn. Pure routing decisions live in
:mod:`worker.ingress.routing`, dedup keys in :mod:`worker.ingress.dedup`, the
Celery task messages in :mod:`worker.ingress.message`, and the batched,
deduplicated Redis writes in :mod:`worker.ingress.dispatch`.
"""
