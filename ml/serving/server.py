"""``churn serve``: the predictor in KServe's ModelServer (what the InferenceService container runs)."""

from __future__ import annotations

import logging
import re

from churn.settings import Settings

log = logging.getLogger("ml.serving")


_ROUTE = re.compile(r"^/v[12]/(?:repository/)?models/([^/:]+)(?:/versions/([^/]+))?")


def guard_routes(app, model) -> None:
    """Answer 404, naming the field, for a model name or version this server does not serve.

    KServe's own routes answer those with 503 (an unknown name is "not ready") and 501 (any
    version); a client asking for the wrong thing should hear it is wrong, not that we are down."""
    from starlette.responses import JSONResponse

    @app.middleware("http")
    async def only_the_served_model(request, call_next):
        m = _ROUTE.match(request.url.path)
        if m:
            if m.group(1) != model.name:
                return JSONResponse({"error": f"model_name: unknown model {m.group(1)!r}; this server serves "
                                              f"{model.name!r}"}, status_code=404)
            version = m.group(2) or request.query_params.get("model_version")
            if version is not None:
                return JSONResponse({"error": f"model_version: {version!r} is not served; this server serves only the "
                                              f"champion of {model.name} (leave model_version out)"}, status_code=404)
        return await call_next(request)


def serve(settings: Settings, port: int = 8080, poll_seconds: float = 30.0, max_batch: int = 100) -> int:
    from kserve import ModelServer

    from ml.serving.predictor import ChurnPredictor

    model = ChurnPredictor(settings, poll_seconds=poll_seconds, max_batch=max_batch)
    model.load()
    log.info("model %s version %s ready on port %d (v1 /v1/models/%s:predict, v2 /v2/models/%s/infer)",
             model.name, model.watcher.current.version, port, model.name, model.name)
    from kserve.model_server import app

    guard_routes(app, model)
    ModelServer(http_port=port, enable_grpc=False, workers=1).start([model])
    return 0
