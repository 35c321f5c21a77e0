"""``churn serve``: the predictor in KServe's ModelServer (what the InferenceService container runs)."""

from __future__ import annotations

import gc
import logging
import re

from churn.core.settings import Settings

log = logging.getLogger("ml.serving")


_ROUTE = re.compile(r"^/v[12]/(?:repository/)?models/([^/:]+)(?:/versions/([^/]+))?")
_INFERENCE = re.compile(r"^/v1/models/[^/]+:predict$|^/v2/models/[^/]+(?:/versions/[^/]+)?/infer$")
_V2_INFER = re.compile(r"^/v2/models/[^/]+(?:/versions/[^/]+)?/infer$")


def _requests_counter():
    from prometheus_client import REGISTRY, Counter

    try:
        return Counter("churn_requests", "Inference requests (v1 :predict, v2 /infer) answered, by HTTP status",
                       ["code"])
    except ValueError:  # registered already (the module imported twice)
        return REGISTRY._names_to_collectors["churn_requests_total"]


REQUESTS = _requests_counter()


def _counted(send):
    """``send`` that counts the response's status (churn_requests_total{code}: the error ratio's basis)."""

    async def counting(message):
        if message["type"] == "http.response.start":
            REQUESTS.labels(code=str(message["status"])).inc()
        await send(message)

    return counting


class GuardRoutes:
    """ASGI middleware in front of KServe's routes.

    - 404, naming the field, for a model name or version this server does not serve. KServe's own
      routes answer those with 503 (an unknown name is "not ready") and 501 (any version); a client
      asking for the wrong thing should hear it is wrong, not that we are down.
    - 413 for a body over the limit, and a JSON body without Content-Type read as JSON.
    - Readiness follows the online features: while ``unready()`` gives a reason (PostgreSQL down),
      the readiness routes answer 503 with it, so Kubernetes sends traffic elsewhere. KServe's
      model stays "ready" (KServe reloads a model that is not), so requests carrying their
      features are still scored here.
    Plain ASGI (not Starlette's BaseHTTPMiddleware): it costs a regex match per request, no task."""

    def __init__(self, app, model_name: str, max_body: int = 1 << 20, unready=lambda: None):
        self.app = app
        self.model_name = model_name
        self.max_body = max_body
        self.unready = unready
        self.readiness = {"/v2/health/ready", f"/v2/models/{model_name}/ready", f"/v1/models/{model_name}"}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            from starlette.responses import JSONResponse

            if _INFERENCE.match(scope["path"]):
                send = _counted(send)

            if scope["path"] in self.readiness and scope["method"] == "GET":
                reason = self.unready()
                if reason is not None:
                    await JSONResponse({"error": f"not ready: {reason}", "ready": False},
                                       status_code=503)(scope, receive, send)
                    return
            refusal = self.refusal(scope["path"], scope.get("query_string", b"").decode("latin-1"))
            if refusal is not None:
                await JSONResponse({"error": refusal}, status_code=404)(scope, receive, send)
                return
            if scope["method"] in ("POST", "PUT"):
                # the body is read here, at most max_body bytes of it: a larger one is refused (413)
                # before anything parses it, whether it announced its length or came in chunks
                headers = dict(scope.get("headers") or [])
                declared = headers.get(b"content-length", b"").decode("latin-1")
                body, too_big = b"", declared.isdigit() and int(declared) > self.max_body
                while not too_big:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    body += message.get("body", b"")
                    too_big = len(body) > self.max_body
                    if not message.get("more_body"):
                        break
                if too_big:
                    await JSONResponse({"error": f"request body: over the limit of {self.max_body} bytes "
                                                 "(CHURN_SERVE_MAX_BODY_BYTES)"}, status_code=413)(scope, receive, send)
                    return
                if _V2_INFER.match(scope["path"]) and b"inference-header-content-length" not in headers:
                    problem = _not_a_v2_body(body)
                    if problem is not None:
                        await JSONResponse({"error": problem}, status_code=400)(scope, receive, send)
                        return
                if (b"content-type" not in headers and b"inference-header-content-length" not in headers
                        and body.lstrip()[:1] in (b"{", b"[")):
                    # a JSON body without the header (tritonclient's v2 JSON requests): KServe would take
                    # it for binary input; read it as JSON, as Triton does. (A binary-tensor request
                    # announces its JSON part's length: that one is left as it came.)
                    scope = {**scope, "headers": [*scope["headers"], (b"content-type", b"application/json")]}
                replayed = False

                async def receive_body():
                    nonlocal replayed
                    if replayed:
                        return await receive()
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}

                await self.app(scope, receive_body, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, path: str, query: str) -> str | None:
        m = _ROUTE.match(path)
        if not m:
            return None
        if m.group(1) != self.model_name:
            return f"model_name: unknown model {m.group(1)!r}; this server serves {self.model_name!r}"
        version = m.group(2)
        if version is None and "model_version" in query:
            from urllib.parse import parse_qs

            version = (parse_qs(query).get("model_version") or [None])[0]
        if version is not None:
            return (f"model_version: {version!r} is not served; this server serves only the champion of "
                    f"{self.model_name} (leave model_version out)")
        return None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _not_a_v2_body(body: bytes) -> str | None:
    """Why a v2 JSON body is the client's mistake before KServe reads it, or None. A v2 request is a
    JSON object; and JSON has no NaN or Infinity, which Python's reader accepts and KServe's error
    handler then fails to render back (a 500). Parsed only when those words appear at all."""
    if body.lstrip()[:1] != b"{":
        return "request body: expected a JSON object with \"inputs\" (Open Inference Protocol v2)"
    if b"NaN" in body or b"Infinity" in body:
        import json

        try:
            json.loads(body, parse_constant=_refuse_constant)
        except ValueError as exc:
            return f"request body: not valid JSON ({exc}); send non-finite numbers as strings or leave them out"
    return None


async def unavailable(_, exc):
    """503 with Retry-After for a request whose features cannot be read now (no stack trace: it is
    an expected state, logged once by the store when it goes down)."""
    from starlette.responses import JSONResponse

    return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": str(exc.retry_after)})


def serve(settings: Settings, port: int = 8080, poll_seconds: float = 30.0) -> int:
    from kserve import ModelServer

    from ml.serving.predictor import ChurnPredictor, FeatureStoreUnavailable

    model = ChurnPredictor(settings, poll_seconds=poll_seconds)
    model.load()
    log.info("model %s version %s ready on port %d (v1 /v1/models/%s:predict, v2 /v2/models/%s/infer)",
             model.name, model.watcher.current.version, port, model.name, model.name)
    from kserve.model_server import app

    # everything loaded so far (libraries, the model) lives as long as the server: keep it out of the
    # garbage collector's scans, which otherwise walk it on every full collection during requests
    gc.collect()
    gc.freeze()

    def unready() -> str | None:
        problem = model.features.problem
        return None if problem is None else f"the online features (PostgreSQL) cannot be read: {problem}"

    app.add_middleware(GuardRoutes, model_name=model.name, max_body=settings.serve_max_body_bytes, unready=unready)
    app.add_exception_handler(FeatureStoreUnavailable, unavailable)
    server = ModelServer(http_port=port, enable_grpc=False, workers=1, enable_latency_logging=False)
    quiet_request_logs()
    server.start([model])
    return 0


def quiet_request_logs() -> None:
    """No log line per request: KServe times every request into its ``kserve.trace`` log (even with
    latency logging off) and uvicorn logs every access, two lines that cost more than a cached
    lookup. The same timings and status codes are Prometheus metrics (/metrics); warnings and
    errors still go to the log. Call after ``ModelServer()``, which configures logging."""
    for name in ("kserve.trace", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
