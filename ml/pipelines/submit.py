"""The hand-off to Kubeflow Pipelines: compile, submit, wait with a timeout, return the outcome.

Airflow's ``churn_training`` DAG runs ``churn pipeline submit`` in a pod. The run is created in a
KFP experiment with caching off; the command polls the run until it reaches a terminal state
(SUCCEEDED, FAILED, CANCELED, SKIPPED) and exits 0 only on SUCCEEDED. When the timeout passes first,
the run is terminated (so a retried task never leaves a second training run going) and the outcome
is TIMED_OUT.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import sys
import tempfile
import time
from pathlib import Path

from churn.core.errors import ChurnError

log = logging.getLogger("ml.pipelines.submit")
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}


class KfpUnavailable(ChurnError):
    exit_code = 3


def check_reachable(host: str, timeout: float = 5.0) -> None:
    import urllib.error
    import urllib.request

    url = host.rstrip("/") + "/apis/v2beta1/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - a configured URL
            resp.read()
    except (urllib.error.URLError, OSError) as exc:
        raise KfpUnavailable(f"Kubeflow Pipelines API {host} is unreachable ({getattr(exc, 'reason', exc)}): "
                             "check --host / CHURN_KFP_HOST") from None


def submit_and_wait(host: str, arguments: dict, image: str, timeout: float, experiment: str = "churn-training",
                    poll: float = 10.0) -> dict:
    import kfp

    from ml.pipelines.training import PIPELINE_NAME, compile_pipeline

    check_reachable(host)
    client = kfp.Client(host=host)
    # kfp prints experiment/run links to stdout; keep stdout for the outcome (JSON) alone
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
        package = compile_pipeline(Path(tmp) / "churn_training.yaml", image)
        run_name = f"{PIPELINE_NAME} {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S}"
        created = client.create_run_from_pipeline_package(
            str(package), arguments=arguments, run_name=run_name, experiment_name=experiment, enable_caching=False)
    run_id = created.run_id
    log.info("submitted %s: run %s (experiment %s)", run_name, run_id, experiment)
    t0 = time.time()
    state = None
    while True:
        run = client.get_run(run_id)
        if run.state != state:
            state = run.state
            log.info("run %s: %s after %.0fs", run_id, state, time.time() - t0)
        if state in TERMINAL:
            error = getattr(run, "error", None)
            return {"run_id": run_id, "state": state, "seconds": round(time.time() - t0, 1),
                    "error": getattr(error, "message", None) if error else None, "host": host}
        if time.time() - t0 > timeout:
            client.terminate_run(run_id)
            log.error("run %s still %s after %.0fs: terminated", run_id, state, timeout)
            return {"run_id": run_id, "state": "TIMED_OUT", "last_state": state, "seconds": round(time.time() - t0, 1),
                    "error": f"no terminal state within {timeout:.0f}s; the run was terminated", "host": host}
        time.sleep(poll)
