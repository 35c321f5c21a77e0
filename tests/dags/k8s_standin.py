"""A stand-in of the Kubernetes API on loopback: pods, their logs and events, and SparkApplications
with a small controller, enough for the cncf-kubernetes provider's clients to run against.

No cluster runs here. The controller plays the spark-operator: a new SparkApplication is
SUBMITTED; after ``start_after`` seconds (None: never) its driver pod ``<name>-driver`` appears and
runs; after ``run_for`` more seconds the driver container terminates with ``exit_code``. Deleting a
SparkApplication deletes its pods (owner references). Like the operator in apache/airflow#41212,
an application whose driver pod was deleted mid-run is reported COMPLETED.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SPARK = "/apis/sparkoperator.k8s.io/v1beta2/namespaces/{ns}/sparkapplications"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Scenario:
    start_after: float | None = 1.0
    run_for: float = 2.0
    exit_code: int = 0
    delete_driver_after: float | None = None  # someone deletes the driver pod this long into its run
    log: str = "INFO  spark_jobs: step done\n"


@dataclass
class State:
    scenario: Scenario = field(default_factory=Scenario)
    apps: dict = field(default_factory=dict)  # (ns, name) -> object
    pods: dict = field(default_factory=dict)  # (ns, name) -> object
    created_at: dict = field(default_factory=dict)
    calls: list = field(default_factory=list)
    submitted: list = field(default_factory=list)  # every SparkApplication body as it was created
    lock: threading.RLock = field(default_factory=threading.RLock)

    # -- the controller --------------------------------------------------------------------------
    def tick(self) -> None:
        with self.lock:
            now = time.time()
            for (ns, name), app in self.apps.items():
                st = app.setdefault("status", {}).setdefault("applicationState", {"state": "SUBMITTED"})
                age = now - self.created_at[(ns, name)]
                sc = app["_scenario"]
                pod_key = (ns, f"{name}-driver")
                if st["state"] == "SUBMITTED" and sc.start_after is not None and age >= sc.start_after:
                    self.pods[pod_key] = self._driver_pod(ns, name, app)
                    st["state"] = "RUNNING"
                    app["status"]["driverInfo"] = {"podName": f"{name}-driver"}
                    app["_running_since"] = now
                elif st["state"] == "RUNNING":
                    if sc.delete_driver_after is not None and now - app["_running_since"] >= sc.delete_driver_after:
                        self.pods.pop(pod_key, None)
                    pod = self.pods.get(pod_key)
                    if pod is None:  # deleted mid-run: the operator calls it a day (#41212)
                        st["state"] = "COMPLETED"
                    elif now - app["_running_since"] >= sc.run_for:
                        code = sc.exit_code
                        pod["status"]["phase"] = "Succeeded" if code == 0 else "Failed"
                        pod["status"]["containerStatuses"][0]["state"] = {"terminated": {
                            "exitCode": code, "reason": "Completed" if code == 0 else "Error",
                            "startedAt": _now(), "finishedAt": _now()}}
                        pod["status"]["containerStatuses"][0]["ready"] = False
                        st["state"] = "COMPLETED" if code == 0 else "FAILED"
                        if code:
                            st["errorMessage"] = f"driver container failed with ExitCode: {code}"

    def _driver_pod(self, ns: str, name: str, app: dict) -> dict:
        labels = {**(app["spec"].get("driver", {}).get("labels") or {}), **(app["spec"].get("labels") or {}),
                  "spark-role": "driver", "sparkoperator.k8s.io/app-name": name}
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{name}-driver", "namespace": ns, "uid": str(uuid.uuid4()), "labels": labels,
                         "creationTimestamp": _now(), "resourceVersion": "1",
                         "ownerReferences": [{"apiVersion": "sparkoperator.k8s.io/v1beta2", "kind": "SparkApplication",
                                              "name": name, "uid": app["metadata"]["uid"]}]},
            "spec": {"containers": [{"name": "spark-kubernetes-driver", "image": app["spec"].get("image", "")}]},
            "status": {"phase": "Running", "startTime": _now(),
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "spark-kubernetes-driver", "ready": True, "restartCount": 0,
                                              "image": app["spec"].get("image", ""), "imageID": "", "started": True,
                                              "state": {"running": {"startedAt": _now()}}}]},
        }

    # -- what tests look at ----------------------------------------------------------------------
    def delete_driver(self, ns: str, app_name: str) -> bool:
        with self.lock:
            return self.pods.pop((ns, f"{app_name}-driver"), None) is not None

    def app_names(self) -> list[str]:
        with self.lock:
            return [n for (_, n) in self.apps]

    def pod_names(self) -> list[str]:
        with self.lock:
            return [n for (_, n) in self.pods]


def _matches(labels: dict, selector: str) -> bool:
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k.rstrip("=")) != v:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _phase_ok(pod: dict, selector: str) -> bool:
    for term in filter(None, (selector or "").split(",")):
        m = re.fullmatch(r"status\.phase(!?=)(\w+)", term)
        if m and ((m.group(1) == "!=") == (pod["status"].get("phase") == m.group(2))):
            return False
    return True


class Handler(BaseHTTPRequestHandler):
    state: State

    def log_message(self, *args):  # quiet
        pass

    def _send(self, code: int, body) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self, kind: str, name: str) -> None:
        self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
                         "message": f'{kind} "{name}" not found'})

    def _body(self) -> dict:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}")

    def _route(self, method: str) -> None:
        st = self.state
        st.tick()
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        st.calls.append((method, url.path))
        parts = url.path.strip("/").split("/")
        with st.lock:
            if parts[0] == "_standin":  # the test's control: set the next scenario, read what exists
                if method == "POST":  # a new scenario starts with an empty cluster
                    st.scenario = Scenario(**self._body())
                    st.apps.clear(), st.pods.clear(), st.created_at.clear(), st.submitted.clear()
                return self._send(200, {"apps": st.app_names(), "pods": st.pod_names(),
                                        "submitted": st.submitted[-1:],
                                        "app_states": {n: a["status"]["applicationState"]["state"]
                                                       for (_, n), a in st.apps.items()}})
            # /api/v1/namespaces/{ns}/pods[/{name}[/log]]  and  /api/v1/namespaces/{ns}/events
            if parts[:3] == ["api", "v1", "namespaces"] and len(parts) >= 5:
                ns, kind = parts[3], parts[4]
                if kind == "events":
                    return self._send(200, {"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": []})
                if kind != "pods":
                    return self._not_found(kind, "")
                if len(parts) == 5 and method == "GET":
                    items = [p for (pns, _), p in st.pods.items() if pns == ns
                             and _matches(p["metadata"]["labels"], q.get("labelSelector"))
                             and _phase_ok(p, q.get("fieldSelector"))]
                    return self._send(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
                name = parts[5]
                pod = st.pods.get((ns, name))
                if pod is None:
                    return self._not_found("pods", name)
                if len(parts) == 7 and parts[6] == "log":
                    return self._send(200, st.apps.get((ns, name.removesuffix("-driver")), {}).get("_scenario", st.scenario).log)
                if method == "GET":
                    return self._send(200, pod)
                if method == "PATCH":
                    patch = self._body()
                    pod["metadata"]["labels"].update((patch.get("metadata") or {}).get("labels") or {})
                    return self._send(200, pod)
                if method == "DELETE":
                    del st.pods[(ns, name)]
                    return self._send(200, pod)
            # /apis/sparkoperator.k8s.io/v1beta2/namespaces/{ns}/sparkapplications[/{name}[/status]]
            if parts[:3] == ["apis", "sparkoperator.k8s.io", "v1beta2"] and len(parts) >= 6 and parts[5] == "sparkapplications":
                ns = parts[4]
                if len(parts) == 6 and method == "POST":
                    body = self._body()
                    name = body["metadata"]["name"]
                    if (ns, name) in st.apps:
                        return self._send(409, {"kind": "Status", "code": 409, "reason": "AlreadyExists",
                                                "message": f"sparkapplications {name} already exists"})
                    st.submitted.append(json.loads(json.dumps(body)))  # as the client sent it
                    body["metadata"].update({"namespace": ns, "uid": str(uuid.uuid4()), "creationTimestamp": _now()})
                    body["status"] = {"applicationState": {"state": "SUBMITTED"}}
                    body["_scenario"] = st.scenario
                    st.apps[(ns, name)] = body
                    st.created_at[(ns, name)] = time.time()
                    return self._send(201, _public(body))
                if len(parts) == 6 and method == "GET":
                    return self._send(200, {"kind": "SparkApplicationList", "items": [_public(a) for a in st.apps.values()]})
                name = parts[6]
                app = st.apps.get((ns, name))
                if app is None:
                    return self._not_found("sparkapplications.sparkoperator.k8s.io", name)
                if method == "GET":
                    return self._send(200, _public(app))
                if method == "DELETE":
                    del st.apps[(ns, name)]
                    for key in [k for k, p in st.pods.items() if any(
                            o.get("uid") == app["metadata"]["uid"] for o in p["metadata"].get("ownerReferences", []))]:
                        del st.pods[key]  # owner references: the driver (and executors) go with it
                    return self._send(200, {"kind": "Status", "status": "Success"})
        return self._not_found("path", url.path)

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def do_PATCH(self):
        self._route("PATCH")

    def do_DELETE(self):
        self._route("DELETE")


def _public(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


class StandIn:
    """Serve the stand-in on a free loopback port; ``kubeconfig(path)`` writes a config pointing at it."""

    def __init__(self):
        self.state = State()
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._stop = threading.Event()

    def _tick(self):
        while not self._stop.wait(0.2):
            self.state.tick()

    def start(self) -> "StandIn":
        self._thread.start()
        self._ticker.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()

    def kubeconfig(self, path) -> str:
        cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "standin",
               "clusters": [{"name": "standin", "cluster": {"server": self.url}}],
               "users": [{"name": "standin", "user": {"token": "standin"}}],
               "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "standin", "namespace": "churn"}}]}
        path.write_text(json.dumps(cfg))
        return str(path)
