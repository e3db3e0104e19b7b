"""Helpers for the gRPC tests: a scripted tiny model whose answers encode the request, and a slow variant."""

from __future__ import annotations

import io
import re
import threading
import time

from PIL import Image

from molmo_agent.backends.registry import resolve
from molmo_agent.backends.scripted import ScriptedMolmo2Backend
from molmo_agent.model import MolmoModel

ITEM = re.compile(r"item (\d+)")


def answer_for(request) -> str:
    """'Point to the item 7.' -> a point at x = 70/1000, y = 500/1000: every request's answer is its own."""
    match = ITEM.search(request.prompt)
    number = int(match.group(1)) if match else 500
    return f'<points coords="1 1 {number * 10:03d} 500">item {number}</points>'


class SlowScriptedBackend(ScriptedMolmo2Backend):
    """The scripted tiny model with an extra delay per model call, and an optional failure trigger."""

    delay_s = 0.0
    calls: list[int]

    def generate(self, requests, options):
        self.calls.append(len(requests))
        if any("explode" in r.prompt for r in requests):
            raise RuntimeError("CUDA out of memory (simulated for this batch)")
        time.sleep(self.delay_s)
        return super().generate(requests, options)


def scripted_model(tiny_dir, delay_s: float = 0.0) -> MolmoModel:
    backend = SlowScriptedBackend(resolve(str(tiny_dir)))
    backend.script = answer_for
    backend.delay_s = delay_s
    backend.calls = []
    return MolmoModel(backend)


def png(size=(640, 480), colour=(30, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def run_threads(count: int, target) -> list:
    """Run ``target(i)`` in ``count`` threads at once; return results (or exceptions) in order."""
    results: list = [None] * count
    barrier = threading.Barrier(count)

    def work(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results
