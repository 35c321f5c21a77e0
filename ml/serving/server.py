"""``churn serve``: the predictor in KServe's ModelServer (what the InferenceService container runs)."""

from __future__ import annotations

import logging

from churn.settings import Settings

log = logging.getLogger("ml.serving")


def serve(settings: Settings, port: int = 8080, poll_seconds: float = 30.0, max_batch: int = 100) -> int:
    from kserve import ModelServer

    from ml.serving.predictor import ChurnPredictor

    model = ChurnPredictor(settings, poll_seconds=poll_seconds, max_batch=max_batch)
    model.load()
    log.info("model %s version %s ready on port %d (v1 /v1/models/%s:predict, v2 /v2/models/%s/infer)",
             model.name, model.watcher.current.version, port, model.name, model.name)
    ModelServer(http_port=port, enable_grpc=False, workers=1).start([model])
    return 0
