"""Benchmark of the gRPC server against the in-process library, on this machine.

Reports medians and p95 of the server's overhead (gRPC round trip minus in-process ``model.point`` for the
same input) for a 640x480 JPEG and a 1280x720 raw BGR frame, and throughput at several client
concurrencies with dynamic batching on versus a maximum batch size of 1. The server runs in a child
process (so client and server do not share one interpreter lock) with the tiny Molmo2 whose answer text is
forced (see ``backends.scripted``), so every request decodes, preprocesses, runs the model and stops at
the closing tag like a real pointing answer.
"""

from __future__ import annotations

import multiprocessing
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass

import numpy as np

FORCED_ANSWER = '<points coords="1 1 412 655">mug</points>'
CONCURRENCIES = (1, 4, 8, 16)


def _serve_forever(model_dir: str, max_batch_size: int, cpu_threads: int, port_queue, stop_event) -> None:
    """Child process: a server with the scripted tiny model until ``stop_event`` is set."""
    import logging

    from ..backends.registry import resolve
    from ..backends.scripted import ScriptedMolmo2Backend
    from ..backends.torch_setup import set_cpu_threads
    from ..model import MolmoModel
    from ..server.app import BackgroundServer
    from ..server.config import ServerConfig

    logging.disable(logging.INFO)
    set_cpu_threads(cpu_threads)
    backend = ScriptedMolmo2Backend(resolve(model_dir))
    backend.script = lambda request: FORCED_ANSWER
    config = ServerConfig(port=0, max_batch_size=max_batch_size, max_batch_wait_ms=5.0, max_queue=256)
    server = BackgroundServer(config, MolmoModel(backend))
    port_queue.put(server.port)
    stop_event.wait()
    server.stop()


@dataclass
class ChildServer:
    process: multiprocessing.Process
    stop_event: object
    target: str

    def close(self) -> None:
        self.stop_event.set()
        self.process.join(30)
        if self.process.is_alive():
            self.process.terminate()


def start_child_server(model_dir: str, max_batch_size: int, cpu_threads: int = 1) -> ChildServer:
    context = multiprocessing.get_context("spawn")
    ports, stop_event = context.Queue(), context.Event()
    process = context.Process(
        target=_serve_forever, args=(model_dir, max_batch_size, cpu_threads, ports, stop_event)
    )
    process.start()
    port = ports.get(timeout=300)
    return ChildServer(process, stop_event, f"127.0.0.1:{port}")


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median_ms": round(statistics.median(ordered), 2), "p95_ms": round(p95, 2), "n": len(ordered)}


def _inputs() -> dict[str, tuple]:
    """Name -> (client input, bgr flag) for the two measured inputs, as a caller would hold them."""
    from ..images import load_image
    from ..wire import image_to_proto
    from .point import synthetic_screenshot

    jpeg = image_to_proto(load_image(synthetic_screenshot((640, 480))), encoding="jpeg").encoded
    frame = np.asarray(load_image(synthetic_screenshot((1280, 720))))[..., ::-1].copy()
    return {"640x480 JPEG": (jpeg, False), "1280x720 raw BGR": (frame, True)}


def _overhead(model_dir: str, target: str, runs: int) -> dict[str, dict]:
    """Interleaved: the same input through the Python client and through ``model.point`` in this process."""
    from ..backends.registry import resolve
    from ..backends.scripted import ScriptedMolmo2Backend
    from ..client import Client
    from ..model import MolmoModel

    backend = ScriptedMolmo2Backend(resolve(model_dir))
    backend.script = lambda request: FORCED_ANSWER
    local = MolmoModel(backend)
    results = {}
    with Client(target) as client:
        for name, (image, bgr) in _inputs().items():
            client.point(image, "the mug", bgr=bgr)
            local.point(image, "the mug", bgr=bgr)
            remote_ms, server_ms, local_ms = [], [], []
            for _ in range(runs):  # interleaved, so machine noise hits both equally
                started = time.perf_counter()
                reply = client.point(image, "the mug", bgr=bgr)
                remote_ms.append((time.perf_counter() - started) * 1000)
                server_ms.append(reply.timing["total_ms"])
                started = time.perf_counter()
                local.point(image, "the mug", bgr=bgr)
                local_ms.append((time.perf_counter() - started) * 1000)
            transport = [r - s for r, s in zip(remote_ms, server_ms, strict=True)]
            results[name] = {
                "grpc": _stats(remote_ms),
                "in_process": _stats(local_ms),
                "server_total": _stats(server_ms),
                "overhead_median_ms": round(statistics.median(remote_ms) - statistics.median(local_ms), 2),
                "transport": _stats(transport),
            }
    return results


def _throughput(target: str, clients: int, seconds: float) -> float:
    """Requests per second with ``clients`` threads each sending its next request as soon as one returns."""
    from ..client import Client

    jpeg = _inputs()["640x480 JPEG"][0]
    done = [0] * clients
    with Client(target) as client:
        client.point(jpeg, "the mug")
        stop_at = time.perf_counter() + seconds

        def worker(i: int) -> None:
            while time.perf_counter() < stop_at:
                client.point(jpeg, "the mug")
                done[i] += 1

        started = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    return sum(done) / elapsed


def run_serve_bench(runs: int = 30, seconds: float = 6.0, preset: str = "tiny", cpu_threads: int = 1) -> dict:
    """Both sides use ``cpu_threads`` torch threads (1 is the faster setting for the tiny model here)."""
    from ..backends.torch_setup import set_cpu_threads
    from ..training.tiny_molmo2 import PRESETS, build_tiny_molmo2

    set_cpu_threads(cpu_threads)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(build_tiny_molmo2(f"{tmp}/{preset}", PRESETS[preset]))
        results: dict = {
            "model": f"tiny preset {preset!r}",
            "cpu_threads": cpu_threads,
            "answer": FORCED_ANSWER,
            "throughput_rps": {},
        }
        batched = start_child_server(model_dir, max_batch_size=16, cpu_threads=cpu_threads)
        try:
            results["overhead"] = _overhead(model_dir, batched.target, runs)
            results["throughput_rps"]["batching"] = {
                n: round(_throughput(batched.target, n, seconds), 2) for n in CONCURRENCIES
            }
        finally:
            batched.close()
        single = start_child_server(model_dir, max_batch_size=1, cpu_threads=cpu_threads)
        try:
            results["throughput_rps"]["batch_size_1"] = {
                n: round(_throughput(single.target, n, seconds), 2) for n in CONCURRENCIES
            }
        finally:
            single.close()
    on, off = results["throughput_rps"]["batching"], results["throughput_rps"]["batch_size_1"]
    results["batching_speedup"] = {n: round(on[n] / off[n], 2) for n in CONCURRENCIES}
    results["table"] = _table(results)
    return results


def _table(r: dict) -> str:
    lines = [
        f"model: {r['model']}, {r['cpu_threads']} torch CPU thread(s) (answer forced: {r['answer']})",
        "",
        "server overhead (gRPC round trip - in-process model.point):",
    ]
    for name, o in r["overhead"].items():
        grpc_ms, local_ms, transport = o["grpc"], o["in_process"], o["transport"]
        lines.append(
            f"  {name:18s} client round trip {grpc_ms['median_ms']:7.2f} ms (p95 {grpc_ms['p95_ms']:.2f})   "
            f"in-process {local_ms['median_ms']:7.2f} ms (p95 {local_ms['p95_ms']:.2f})   "
            f"overhead {o['overhead_median_ms']:.2f} ms   "
            f"round trip - server time {transport['median_ms']:.2f} ms (p95 {transport['p95_ms']:.2f})"
        )
    lines += ["", "throughput (requests/s)   clients: " + "  ".join(f"{n:>7d}" for n in CONCURRENCIES)]
    for label, key in (("batching on (max 16)", "batching"), ("max batch size 1", "batch_size_1")):
        lines.append(
            f"  {label:24s}          "
            + "  ".join(f"{r['throughput_rps'][key][n]:7.2f}" for n in CONCURRENCIES)
        )
    lines.append(
        "  speedup                           "
        + "  ".join(f"{r['batching_speedup'][n]:6.2f}x" for n in CONCURRENCIES)
    )
    return "\n".join(lines)
