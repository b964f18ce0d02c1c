"""The web service (``serve.py``): an HTTP API and a web page over the inference package.

- :mod:`serving.app`: ``create_app(ServeConfig)``, the FastAPI application (error handlers,
  middlewares, lifespan: temporary folder, worker threads, job sweeper).
- :mod:`serving.routes`: one ``APIRouter`` per resource (pages, styles, images, videos and
  jobs, health and metrics).
- :mod:`serving.deps`: the routes' dependencies (settings, engine, service);
  :mod:`serving.service`: ``Service``, what the routes share.
- :mod:`serving.schemas`: the answers and forms as pydantic models (``/openapi.json``);
  :mod:`serving.forms`: form values, the Accept header, upload and decoder errors.
- :mod:`serving.config`: ``ServeConfig``, every limit and default in one place.
- :mod:`serving.errors`: ``ApiError`` and the one JSON error shape.
- :mod:`serving.uploads`: streaming multipart reading with byte limits and an idle timeout,
  format sniffing by magic bytes.
- :mod:`serving.decoder`: the processes that read uploaded images (header, limits, pixels),
  ended when a request's ``--timeout`` passes.
- :mod:`serving.engine`: engines (a style name -> a callable stylizer); ``TorchEngine``,
  ``OnnxRuntimeEngine`` (``serve.py --engine``); the LRU cache of loaded styles.
- :mod:`serving.pool`: the bounded queue in front of the inference worker threads.
- :mod:`serving.jobs`: video jobs (a single video worker thread, progress, cancel, expiry).
- :mod:`serving.metrics`: Prometheus metrics (labels from fixed sets) and the
  one-line-per-request log (control characters escaped).
- :mod:`serving.server`: uvicorn's configuration and its h11 protocol with a header timeout, a
  connection limit and JSON errors for requests h11 refuses.
- :mod:`serving.guards`: the Host check and the draining of refused bodies (ASGI middlewares).
- :mod:`serving.workdir`: the service's temporary folder, locked while it runs; those of killed
  services are removed at start.
- ``serving/static/``: the web page (plain HTML, CSS and JS; nothing from the internet).

Nothing happens at import: every object is built by ``create_app``.
"""
