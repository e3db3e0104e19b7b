"""What the server's request budgets buy, printed (tests assert behaviour, never memory or time).

    python benchmarks/server_budgets.py

- resident memory before and after one request of eight 7000x7000 PNGs: refused by the default
  ``max_request_pixels`` budget, and answered with the budget raised (decoded buffers are handed back with
  ``malloc_trim`` after large requests),
- the same for one 7000x7000 PNG (within every default limit),
- a 2,000-emoji query: refused by ``max_text_tokens`` before any image is decoded,
- the first and later Point requests after SERVING with the server's warm-up on.

Runs in one process with the tiny scripted Molmo2 (built in a temporary folder) on the CPU.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import grpc
import numpy as np
from PIL import Image
from server_helpers import scripted_model

from molmo_agent import wire
from molmo_agent.images import ImageLimits
from molmo_agent.server.app import BackgroundServer
from molmo_agent.server.config import ServerConfig
from molmo_agent.training.tiny_molmo2 import build_tiny_molmo2
from molmo_agent.v1 import service_pb2, service_pb2_grpc, types_pb2

SMALL = types_pb2.Image(raw=types_pb2.RawImage(width=64, height=48, format=1, data=b"\0" * 64 * 48 * 3))


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def big_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (7000, 7000), (30, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def call(stub, request) -> tuple[str, float]:
    started = time.perf_counter()
    try:
        stub.Point(request, timeout=600)
        status = "OK"
    except grpc.RpcError as error:
        status = f"{error.code().name} ({error.details()[:70]}...)"
    return status, time.perf_counter() - started


def memory(tiny: Path, count: int, request_pixels: int) -> None:
    config = ServerConfig(port=0, warmup=False, max_request_pixels=request_pixels)
    model = scripted_model(tiny)
    model.limits = ImageLimits(max_total_pixels=request_pixels)
    options = [("grpc.max_send_message_length", config.max_message_bytes)]
    with BackgroundServer(config, model) as server, grpc.insecure_channel(server.target, options) as channel:
        stub = service_pb2_grpc.MolmoAgentStub(channel)
        stub.Point(service_pb2.PointRequest(images=[SMALL], query="the item 3"), timeout=60)
        before = rss_mb()
        request = service_pb2.PointRequest(
            images=[types_pb2.Image(encoded=big_png())] * count, query="the item 3"
        )
        status, seconds = call(stub, request)
        after = rss_mb()
        time.sleep(1.0)
        stub.Point(service_pb2.PointRequest(images=[SMALL], query="the item 3"), timeout=60)
        settled = rss_mb()
    print(
        f"{count} x 7000x7000 PNG, max_request_pixels {request_pixels:,}: {status} in {seconds:.1f} s; "
        f"RSS {before:.0f} MB before, {after:.0f} MB after, {settled:.0f} MB a second later"
    )


def emoji_and_first_request(tiny: Path) -> None:
    config = ServerConfig(port=0, warmup=True)
    frame = wire.image_to_proto(
        np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8), encoding="jpeg"
    )
    with (
        BackgroundServer(config, scripted_model(tiny)) as server,
        grpc.insecure_channel(server.target) as channel,
    ):
        stub = service_pb2_grpc.MolmoAgentStub(channel)
        totals = []
        for _ in range(4):
            reply = stub.Point(service_pb2.PointRequest(images=[frame], query="the item 3"), timeout=60)
            totals.append(reply.timing.total_ms)
        print("Point after SERVING (warm-up on), server total ms: " + ", ".join(f"{t:.0f}" for t in totals))
        status, seconds = call(stub, service_pb2.PointRequest(images=[frame], query="\U0001f600" * 2000))
        print(f"2,000-emoji query: {status} in {seconds * 1000:.0f} ms")


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        tiny = build_tiny_molmo2(Path(folder))
        emoji_and_first_request(tiny)
        memory(tiny, 1, ServerConfig().max_request_pixels)
        memory(tiny, 8, ServerConfig().max_request_pixels)
        memory(tiny, 8, 400_000_000)


if __name__ == "__main__":
    main()
