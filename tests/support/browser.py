"""Headless Chromium (Debian's ``chromium``) driven over the DevTools protocol: open a page, collect
its console errors and uncaught exceptions, save a PNG screenshot. What a person opening an HTML
report would see, checked without one."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from churn.core.net import free_port

#: The flags the machine's closed network needs (no background connections, no Google lookups).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def render(page: Path, screenshot: Path, width: int = 1400, height: int = 1800, settle: float = 3.0,
           timeout: float = 90.0) -> dict:
    """Load ``page`` (a file), wait for it to finish loading and ``settle`` seconds more for its
    scripts to draw, save a screenshot; ``{"errors": [...], "title": ...}``."""
    import websocket

    binary = chromium()
    if binary is None:
        raise RuntimeError("chromium is not installed: apt-get install chromium (make test's prerequisites)")
    port = free_port()
    profile = tempfile.mkdtemp(prefix="chromium-")
    proc = subprocess.Popen([binary, *FLAGS, f"--remote-debugging-port={port}", f"--user-data-dir={profile}",
                             f"--window-size={width},{height}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + timeout
        target = None
        while target is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2) as r:
                    target = next(t for t in json.load(r) if t.get("type") == "page")
            except (OSError, StopIteration, ValueError):
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"chromium did not open its DevTools port {port}") from None
                time.sleep(0.2)
        ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=timeout)
        ids = iter(range(1, 10_000))
        errors: list[str] = []

        def call(method: str, **params) -> dict:
            mid = next(ids)
            ws.send(json.dumps({"id": mid, "method": method, "params": params}))
            while True:
                msg = json.loads(ws.recv())
                if msg.get("id") == mid:
                    if "error" in msg:
                        raise RuntimeError(f"{method}: {msg['error']}")
                    return msg.get("result", {})
                note(msg)

        def note(msg: dict) -> None:
            method, params = msg.get("method"), msg.get("params", {})
            if method == "Runtime.exceptionThrown":
                d = params.get("exceptionDetails", {})
                errors.append(f"uncaught: {d.get('exception', {}).get('description') or d.get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append("console.error: " + " ".join(str(a.get("value", a.get("description", "")))
                                                           for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                errors.append(f"log: {params['entry'].get('text')} ({params['entry'].get('url', '')})")
            elif method == "Page.loadEventFired":
                loaded.append(True)

        loaded: list[bool] = []
        for domain in ("Page", "Runtime", "Log"):
            call(f"{domain}.enable")
        call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        call("Page.navigate", url=Path(page).resolve().as_uri())
        while not loaded:
            if time.time() > deadline:
                raise RuntimeError(f"{page} did not finish loading in {timeout:.0f}s")
            note(json.loads(ws.recv()))
        end = time.time() + settle
        ws.settimeout(0.25)
        while time.time() < end:
            try:
                note(json.loads(ws.recv()))
            except websocket.WebSocketTimeoutException:
                pass
        ws.settimeout(timeout)
        title = call("Runtime.evaluate", expression="document.title", returnByValue=True)["result"].get("value")
        shot = call("Page.captureScreenshot", format="png")
        Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
        ws.close()
        return {"errors": errors, "title": title}
    finally:
        proc.kill()
        proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)
