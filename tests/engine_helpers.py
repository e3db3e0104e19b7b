"""Helpers for the openai:// tests: a real `transformers serve` on loopback, and a fault-injecting HTTP
server for the error paths an engine cannot be made to take on demand (401, 429, 503, timeouts)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

READY = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@dataclass
class Engine:
    process: subprocess.Popen
    port: int
    model: str
    log: Path

    def url(self, **options: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in {"model": self.model, **options}.items())
        return f"openai://127.0.0.1:{self.port}/v1?{query}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def transformers_cli() -> Path:
    return Path(sys.executable).parent / "transformers"


def start_transformers_serve(model_dir: Path, log: Path, deadline_s: float = 300) -> Engine:
    """`transformers serve MODEL --device cpu` on a port the OS picks; returns once it lists the model."""
    import httpx

    model = str(Path(model_dir).resolve())
    command = [
        str(transformers_cli()),
        "serve",
        model,
        "--device",
        "cpu",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ})
    deadline = time.monotonic() + deadline_s
    port = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"transformers serve exited ({process.returncode}):\n{log.read_text()[-3000:]}"
            )
        if port is None:
            match = READY.search(log.read_text(errors="replace"))
            port = int(match.group(1)) if match else None
        if port is not None:
            try:
                listing = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5).json()
                if any(entry.get("id") == model for entry in listing.get("data", [])):
                    return Engine(process, port, model, log)
            except (httpx.HTTPError, ValueError):
                pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"transformers serve not ready in {deadline_s} s:\n{log.read_text()[-3000:]}")


# -- fault injection ---------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: dict | str = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def answer(text: str, finish_reason: str = "stop", **extra) -> Reply:
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}
    return Reply(body={"choices": [choice | extra], "usage": {"completion_tokens": 7, "prompt_tokens": 9}})


class FaultServer:
    """An HTTP server that lists ``models`` and answers chat completions from a script of replies.

    ``script`` is called with the request body and returns the :class:`Reply`; every body is kept in
    ``bodies`` and every request's headers in ``headers``.
    """

    def __init__(self, models: dict[str, str] | None = None, script: Callable[[dict], Reply] | None = None):
        self.models = models if models is not None else {"allenai/Molmo2-8B": ""}
        self.script = script or (lambda body: answer('<points coords="1 1 500 500">x</points>'))
        self.bodies: list[dict] = []
        self.headers: list[dict[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                owner.headers.append(dict(self.headers))
                if self.path.rstrip("/") == "/v1/models":
                    data = [{"id": k, "object": "model", "root": v or k} for k, v in owner.models.items()]
                    self._send(Reply(body={"object": "list", "data": data}))
                else:
                    self._send(Reply(404, {"detail": "Not Found"}))

            def do_POST(self) -> None:
                owner.headers.append(dict(self.headers))
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.bodies.append(body)
                self._send(owner.script(body))

            def _send(self, reply: Reply) -> None:
                time.sleep(reply.delay_s)
                payload = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                data = payload.encode()
                try:
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, **options) -> str:
        options = {"model": next(iter(self.models), ""), "retries": 3, **options}
        query = "&".join(f"{k}={v}" for k, v in options.items() if v is not None)
        return f"openai://127.0.0.1:{self.port}/v1?{query}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
