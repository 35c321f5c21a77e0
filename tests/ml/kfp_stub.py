"""A stand-in for the Kubeflow Pipelines v2beta1 REST API on loopback, answering as KFP does for the
calls the hand-off makes (healthz, experiments, runs, terminate), and recording every request."""

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class KfpStub:
    def __init__(self, final_state="SUCCEEDED", polls_until_done=2):
        self.final_state = final_state
        self.polls_until_done = polls_until_done  # None: never finishes
        self.requests: list[tuple[str, str, dict | None]] = []
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.polls: dict[str, int] = {}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(n) or b"{}") if n else None

            def do_GET(self):
                stub.requests.append(("GET", self.path, None))
                url = urlparse(self.path)
                if url.path == "/apis/v2beta1/healthz":
                    return self._send(200, {"multi_user": False})
                if url.path == "/apis/v2beta1/experiments":
                    flt = json.loads(parse_qs(url.query).get("filter", ["{}"])[0] or "{}")
                    names = [p.get("string_value") for p in flt.get("predicates", [])]
                    found = [e for e in stub.experiments.values() if e["display_name"] in names]
                    return self._send(200, {"experiments": found, "total_size": len(found)} if found else {})
                if url.path.startswith("/apis/v2beta1/runs/"):
                    run_id = url.path.rsplit("/", 1)[1]
                    run = stub.runs.get(run_id)
                    if run is None:
                        return self._send(404, {"error_message": f"run {run_id} not found", "code": 5})
                    stub.polls[run_id] = stub.polls.get(run_id, 0) + 1
                    if run["state"] not in ("CANCELED",) and stub.polls_until_done is not None \
                            and stub.polls[run_id] >= stub.polls_until_done:
                        run["state"] = stub.final_state
                        if stub.final_state == "FAILED":
                            run["error"] = {"code": 2, "message": "task train-model failed"}
                    elif run["state"] == "PENDING":
                        run["state"] = "RUNNING"
                    return self._send(200, run)
                return self._send(404, {"error_message": "not found", "code": 5})

            def do_POST(self):
                body = self._body()
                stub.requests.append(("POST", self.path, body))
                path = urlparse(self.path).path
                if path == "/apis/v2beta1/experiments":
                    exp = {**body, "experiment_id": str(uuid.uuid4()), "storage_state": "AVAILABLE"}
                    stub.experiments[exp["experiment_id"]] = exp
                    return self._send(200, exp)
                if path == "/apis/v2beta1/runs":
                    if not body.get("pipeline_spec") and not body.get("pipeline_version_reference"):
                        return self._send(400, {"error_message": "a run needs a pipeline spec", "code": 3})
                    run = {**body, "run_id": str(uuid.uuid4()), "state": "PENDING",
                           "created_at": "2026-11-26T00:00:00Z"}
                    stub.runs[run["run_id"]] = run
                    return self._send(200, run)
                if path.startswith("/apis/v2beta1/runs/") and path.endswith(":terminate"):
                    run_id = path.split("/")[-1].split(":")[0]
                    stub.runs[run_id]["state"] = "CANCELED"
                    return self._send(200, {})
                return self._send(404, {"error_message": "not found", "code": 5})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
