"""A real gRPC server on loopback with the tiny Molmo2 (answers scripted per request), raw stubs."""

from __future__ import annotations

import struct
import threading
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from server_helpers import png, run_threads, scripted_model

from molmo_agent import wire
from molmo_agent.geometry import CameraIntrinsics
from molmo_agent.parsing import complete_cut_answer
from molmo_agent.server.app import BackgroundServer
from molmo_agent.server.config import ConfigError, ServerConfig
from molmo_agent.v1 import service_pb2, service_pb2_grpc, types_pb2

POINT = "/molmo_agent.v1.MolmoAgent/Point"


@pytest.fixture(scope="module")
def server(tiny_dir):
    config = ServerConfig(
        port=0, warmup=False, max_batch_size=8, max_batch_wait_ms=30, max_image_pixels=20_000_000
    )
    with BackgroundServer(config, scripted_model(tiny_dir)) as running:
        yield running


@pytest.fixture(scope="module")
def stub(server):
    channel = grpc.insecure_channel(server.target)
    yield service_pb2_grpc.MolmoAgentStub(channel)
    channel.close()


def point_request(query="the item 7", image=None, **fields) -> service_pb2.PointRequest:
    image = image if image is not None else types_pb2.Image(encoded=png())
    return service_pb2.PointRequest(images=[image], query=query, **fields)


def health_status(target: str, service: str = "") -> int:
    with grpc.insecure_channel(target) as channel:
        return (
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service)).status
        )


# -- round trips ---------------------------------------------------------------------------------------------


def test_unary_point_maps_to_original_pixels_and_reports_timing(stub):
    response = stub.Point(point_request("the item 25"), timeout=30)
    assert [(p.x, p.y) for p in response.points] == [(pytest.approx(160.0), pytest.approx(240.0))]
    assert response.count == 1
    assert response.text == '<points coords="1 1 250 500">item 25</points>'
    assert response.model_id
    timing = response.timing
    assert timing.total_ms >= timing.model_ms > 0
    assert timing.decode_ms > 0 and timing.batch_size >= 1


def test_raw_bgr_frame_gives_the_same_points_as_png(stub):
    frame = np.zeros((480, 640, 3), dtype=np.uint8)
    raw = wire.image_to_proto(frame, bgr=True)
    assert raw.HasField("raw")
    from_raw = stub.Point(point_request("the item 40", image=raw), timeout=30)
    from_png = stub.Point(point_request("the item 40"), timeout=30)
    assert [(p.x, p.y) for p in from_raw.points] == [(p.x, p.y) for p in from_png.points]


def test_sixteen_concurrent_clients_get_their_own_answers_in_batches(server, stub):
    before = dict(stub.GetModelInfo(service_pb2.GetModelInfoRequest(), timeout=10).counters.batch_sizes)

    def ask(i: int):
        return stub.Point(point_request(f"the item {i + 10}"), timeout=60)

    responses = run_threads(16, ask)
    for i, response in enumerate(responses):
        assert not isinstance(response, Exception), response
        assert response.points[0].label == f"item {i + 10}"
        assert response.points[0].x == pytest.approx((i + 10) * 10 / 1000 * 640)
    after = dict(stub.GetModelInfo(service_pb2.GetModelInfoRequest(), timeout=10).counters.batch_sizes)
    new_batches = {size: after.get(size, 0) - before.get(size, 0) for size in after}
    assert any(size > 1 and count > 0 for size, count in new_batches.items()), new_batches
    assert max(r.timing.batch_size for r in responses) > 1


def test_stream_point_answers_frames_and_drops_stale_ones(stub):
    frames = [
        point_request(f"the item {i + 1}", frame_id=f"f{i}", frame_timestamp=float(i)) for i in range(12)
    ]
    responses = list(stub.StreamPoint(iter(frames), timeout=60))
    assert responses, "the stream must answer"
    ids = [r.frame_id for r in responses]
    assert ids == sorted(ids, key=lambda f: int(f[1:])), "responses follow frame order"
    assert ids[-1] == "f11", "the newest frame is always answered"
    assert len(responses) + sum(r.frames_dropped for r in responses) == len(frames)
    for response in responses:
        number = int(response.frame_id[1:]) + 1
        assert response.points[0].label == f"item {number}"
        assert response.frame_timestamp == float(number - 1)


def test_act_and_generate_round_trip(server, stub):
    act = stub.Act(
        service_pb2.ActRequest(
            screenshot=types_pb2.Image(encoded=png()), goal="Open the item 50", step="Tap it"
        ),
        timeout=30,
    )
    assert act.text.startswith("<points")
    assert not act.HasField("action") and act.reason  # the scripted answer is a point, not an action
    generated = stub.Generate(
        service_pb2.GenerateRequest(images=[types_pb2.Image(encoded=png())], prompt="Find the item 30"),
        timeout=30,
    )
    # free text has no early stop: the answer goes on after the tag
    assert generated.text.startswith('<points coords="1 1 300 500">item 30</points>')
    assert generated.points[0].x == pytest.approx(192.0)


def test_generate_with_stop_at_coords_leaves_the_label_to_the_caller(stub):
    options = service_pb2.GenerationOptions(stop_at_answer=True, stop_at_coords=True)
    request = service_pb2.GenerateRequest(
        images=[types_pb2.Image(encoded=png())], prompt="Find the item 30", options=options
    )
    generated = stub.Generate(request, timeout=30)
    full = '<points coords="1 1 300 500">item 30</points>'
    # decoding stopped after the coordinates: the text is as decoded, the caller closes it with its label
    assert generated.text != full and "item 30" not in generated.text
    assert complete_cut_answer(generated.text, "item 30") == full
    assert generated.points[0].x == pytest.approx(192.0)


def test_model_info_reports_limits_and_counters(stub):
    info = stub.GetModelInfo(service_pb2.GetModelInfoRequest(), timeout=10)
    assert info.family == "molmo2" and info.device == "cpu"
    assert info.limits.max_batch_size == 8
    assert info.limits.max_message_bytes >= 3840 * 2160 * 3
    assert info.counters.requests > 0


def test_a_raw_4k_frame_fits_in_one_message(stub):
    frame = np.zeros((2160, 3840, 3), dtype=np.uint8)
    response = stub.Point(point_request(image=wire.image_to_proto(frame, bgr=True)), timeout=60)
    assert response.points[0].x == pytest.approx(70 / 1000 * 3840)


# -- depth -> 3D -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["uint16_mm", "float32_m"])
def test_depth_and_intrinsics_give_the_hand_computed_3d_point(stub, encoding):
    width, height = 640, 480
    metres = 1.25
    depth = (
        np.full((height, width), int(metres * 1000), dtype=np.uint16)
        if encoding == "uint16_mm"
        else np.full((height, width), metres, dtype=np.float32)
    )
    intrinsics = CameraIntrinsics(fx=500.0, fy=510.0, cx=320.0, cy=240.0)
    base = np.eye(4)
    base[:3, 3] = [1.0, 2.0, 3.0]
    request = point_request(
        "the item 25",
        depth=wire.depth_to_proto(depth),
        intrinsics=wire.intrinsics_to_proto(intrinsics),
        camera_to_base=wire.transform_to_proto(base),
    )
    point = stub.Point(request, timeout=30).points[0]
    u, v = 0.25 * width, 0.5 * height  # the scripted answer: x = 250/1000, y = 500/1000
    expected = np.array([(u - 320.0) / 500.0 * metres, (v - 240.0) / 510.0 * metres, metres])
    got = np.array([point.camera_xyz.x, point.camera_xyz.y, point.camera_xyz.z])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    base = [point.base_xyz.x, point.base_xyz.y, point.base_xyz.z]
    np.testing.assert_allclose(base, expected + np.array([1.0, 2.0, 3.0]))


def test_depth_holes_give_a_note_instead_of_a_point(stub):
    depth = np.zeros((480, 640), dtype=np.uint16)
    request = point_request(
        depth=wire.depth_to_proto(depth),
        intrinsics=wire.intrinsics_to_proto(CameraIntrinsics(500, 500, 320, 240)),
    )
    point = stub.Point(request, timeout=30).points[0]
    assert not point.HasField("camera_xyz")
    assert "depth" in point.depth_note


# -- bad requests ------------------------------------------------------------------------------------------


def _huge_png_header() -> bytes:
    """A small PNG file whose header claims 40000 x 40000 pixels (a decompression bomb's first bytes)."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _bad_requests():
    good_jpeg = wire.image_to_proto(np.full((64, 64, 3), 128, np.uint8), encoding="jpeg").encoded
    intrinsics = types_pb2.CameraIntrinsics(fx=500, fy=500, cx=32, cy=32)
    small_depth = wire.depth_to_proto(np.ones((10, 10), dtype=np.uint16))
    return {
        "truncated jpeg": (
            point_request(image=types_pb2.Image(encoded=good_jpeg[: len(good_jpeg) // 2])),
            "image",
        ),
        "random bytes": (
            point_request(image=types_pb2.Image(encoded=np.random.default_rng(0).bytes(4096))),
            "decode",
        ),
        "0x0 image": (
            point_request(image=types_pb2.Image(raw=types_pb2.RawImage(width=0, height=0, format=1))),
            "0",
        ),
        "raw length mismatch": (
            point_request(
                image=types_pb2.Image(raw=types_pb2.RawImage(width=64, height=64, format=1, data=b"\0" * 100))
            ),
            "expected at least",
        ),
        "40000x40000 png": (point_request(image=types_pb2.Image(encoded=_huge_png_header())), "pixels"),
        "depth size mismatch": (
            point_request(
                image=wire.image_to_proto(np.zeros((64, 64, 3), np.uint8)),
                depth=small_depth,
                intrinsics=intrinsics,
            ),
            "aligned",
        ),
        "nan intrinsics": (
            point_request(
                image=wire.image_to_proto(np.zeros((10, 10, 3), np.uint8)),
                depth=small_depth,
                intrinsics=types_pb2.CameraIntrinsics(fx=float("nan"), fy=500, cx=5, cy=5),
            ),
            "fx",
        ),
        "empty query": (point_request("  "), "empty"),
        "1 MB query": (point_request("x" * 1_000_000), "max_query_chars"),
        "missing image": (service_pb2.PointRequest(query="the mug"), "no image"),
        "image with nothing set": (point_request(image=types_pb2.Image()), "neither"),
    }


@pytest.mark.parametrize("case", list(_bad_requests()))
def test_bad_requests_are_invalid_argument_with_a_message(stub, case):
    request, fragment = _bad_requests()[case]
    with pytest.raises(grpc.RpcError) as caught:
        stub.Point(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert fragment.lower() in caught.value.details().lower(), caught.value.details()


def test_invalid_utf8_query_is_invalid_argument(server):
    with grpc.insecure_channel(server.target) as channel:
        call = channel.unary_unary(POINT, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        image = types_pb2.Image(encoded=png()).SerializeToString()
        payload = b"\x0a" + bytes([len(image) & 0x7F | 0x80, len(image) >> 7]) + image + b"\x12\x02\xff\xfe"
        with pytest.raises(grpc.RpcError) as caught:
            call(payload, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "PointRequest" in caught.value.details()


def test_server_is_healthy_and_answers_after_the_bad_requests(server, stub):
    assert health_status(server.target) == health_pb2.HealthCheckResponse.SERVING
    assert stub.Point(point_request("the item 9"), timeout=30).points[0].label == "item 9"
    errors = stub.GetModelInfo(service_pb2.GetModelInfoRequest(), timeout=10).counters.errors_by_code
    assert errors["INVALID_ARGUMENT"] >= len(_bad_requests())


def test_a_model_failure_fails_only_its_batch(stub):
    with pytest.raises(grpc.RpcError) as caught:
        stub.Point(point_request("explode"), timeout=30)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "out of memory" in caught.value.details()
    assert stub.Point(point_request("the item 3"), timeout=30).points[0].label == "item 3"


# -- limits, deadlines, queue, lifecycle -----------------------------------------------------------------


def test_deadline_passed_in_the_queue_never_reaches_the_model(tiny_dir):
    model = scripted_model(tiny_dir, delay_s=0.8)
    config = ServerConfig(port=0, warmup=False, max_batch_size=1, max_batch_wait_ms=0)
    with BackgroundServer(config, model) as server, grpc.insecure_channel(server.target) as channel:
        stub = service_pb2_grpc.MolmoAgentStub(channel)
        blocker = stub.Point.future(point_request("the item 1"), timeout=30)
        time.sleep(0.2)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Point(point_request("the item 2"), timeout=0.3)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert blocker.result().points[0].label == "item 1"
        time.sleep(0.3)
        assert model.backend.calls == [1], "the expired request must not be sent to the model"


def test_queue_overflow_is_resource_exhausted(tiny_dir):
    model = scripted_model(tiny_dir, delay_s=0.5)
    config = ServerConfig(port=0, warmup=False, max_batch_size=1, max_batch_wait_ms=0, max_queue=2)
    with BackgroundServer(config, model) as server, grpc.insecure_channel(server.target) as channel:
        stub = service_pb2_grpc.MolmoAgentStub(channel)
        results = run_threads(8, lambda i: stub.Point(point_request(f"the item {i + 1}"), timeout=30))
    codes = [r.code() if isinstance(r, grpc.RpcError) else grpc.StatusCode.OK for r in results]
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
    assert grpc.StatusCode.OK in codes
    rejected = [r for r in results if isinstance(r, grpc.RpcError)]
    assert all("max-queue" in r.details() for r in rejected)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_health_goes_from_not_serving_to_serving_to_not_serving(tiny_dir, monkeypatch):
    import molmo_agent.server.app as app

    release = threading.Event()
    real_load = app.load_model

    def slow_load(*args, **kwargs):
        release.wait(30)
        return real_load(str(tiny_dir))

    monkeypatch.setattr(app, "load_model", slow_load)
    port = _free_port()
    target = f"127.0.0.1:{port}"
    holder = {}
    starter = threading.Thread(
        target=lambda: holder.setdefault("server", BackgroundServer(ServerConfig(port=port)))
    )
    starter.start()
    states = {}
    try:
        deadline = time.monotonic() + 20
        while "loading" not in states and time.monotonic() < deadline:
            try:
                states["loading"] = health_status(target, "molmo_agent.v1.MolmoAgent")
            except grpc.RpcError:
                time.sleep(0.05)  # not bound yet
        with grpc.insecure_channel(target) as channel, pytest.raises(grpc.RpcError) as caught:
            service_pb2_grpc.MolmoAgentStub(channel).Point(point_request(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        release.set()
        starter.join(60)
    server = holder["server"]
    states["ready"] = health_status(target, "molmo_agent.v1.MolmoAgent")
    server._call(server.running.health.enter_graceful_shutdown())
    states["stopping"] = health_status(target, "molmo_agent.v1.MolmoAgent")
    server.stop()
    assert states == {
        "loading": health_pb2.HealthCheckResponse.NOT_SERVING,
        "ready": health_pb2.HealthCheckResponse.SERVING,
        "stopping": health_pb2.HealthCheckResponse.NOT_SERVING,
    }


def test_graceful_shutdown_completes_in_flight_requests(tiny_dir):
    model = scripted_model(tiny_dir, delay_s=1.0)
    server = BackgroundServer(ServerConfig(port=0, warmup=False), model)
    channel = grpc.insecure_channel(server.target)
    stub = service_pb2_grpc.MolmoAgentStub(channel)
    in_flight = stub.Point.future(point_request("the item 44"), timeout=30)
    time.sleep(0.3)
    server.stop(grace_s=10)
    assert in_flight.result().points[0].label == "item 44"
    channel.close()


def test_config_refuses_public_bind_without_auth():
    with pytest.raises(ConfigError, match="without authentication"):
        ServerConfig(host="0.0.0.0")
    assert ServerConfig(host="0.0.0.0", token="s3cret").host == "0.0.0.0"
    assert ServerConfig(host="0.0.0.0", insecure=True).insecure
    assert ServerConfig().host == "127.0.0.1"


def test_cli_serve_answers_then_exits_cleanly_on_sigterm(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "molmo_agent.cli", "serve", "--port", str(port), "--grace", "5"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    target = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        status = None
        while status != health_pb2.HealthCheckResponse.SERVING and time.monotonic() < deadline:
            try:
                status = health_status(target)
            except grpc.RpcError:
                time.sleep(0.2)
        assert status == health_pb2.HealthCheckResponse.SERVING
        with grpc.insecure_channel(target) as channel:
            info = service_pb2_grpc.MolmoAgentStub(channel).GetModelInfo(
                service_pb2.GetModelInfoRequest(), timeout=10
            )
        assert info.model_id == "molmo-agent/default"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert '"method": "GetModelInfo"' in stderr, "one structured log line per request"


def test_a_request_cancelled_while_queued_never_reaches_the_model(tiny_dir):
    model = scripted_model(tiny_dir, delay_s=0.8)
    config = ServerConfig(port=0, warmup=False, max_batch_size=1, max_batch_wait_ms=0)
    with BackgroundServer(config, model) as server, grpc.insecure_channel(server.target) as channel:
        stub = service_pb2_grpc.MolmoAgentStub(channel)
        blocker = stub.Point.future(point_request("the item 1"), timeout=30)
        time.sleep(0.2)
        cancelled = stub.Point.future(point_request("the item 2"), timeout=30)
        time.sleep(0.1)
        assert cancelled.cancel()
        assert blocker.result().points[0].label == "item 1"
        time.sleep(0.5)
        assert model.backend.calls == [1], "the cancelled request must not be sent to the model"
        counters = stub.GetModelInfo(service_pb2.GetModelInfoRequest(), timeout=10).counters
        assert counters.errors_by_code["CANCELLED"] == 1


def test_reflection_lists_the_services(server):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(server.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        response = next(stub.ServerReflectionInfo(iter([request]), timeout=10))
    names = {service.name for service in response.list_services_response.service}
    assert {"molmo_agent.v1.MolmoAgent", "grpc.health.v1.Health"} <= names


def test_generation_options_above_the_limit_name_the_limit(stub):
    request = service_pb2.GenerateRequest(
        images=[types_pb2.Image(encoded=png())],
        prompt="Describe it.",
        options=service_pb2.GenerationOptions(max_new_tokens=100_000),
    )
    with pytest.raises(grpc.RpcError) as caught:
        stub.Generate(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_new_tokens" in caught.value.details() and "512" in caught.value.details()


def test_too_many_images_name_the_limit(stub):
    request = service_pb2.PointRequest(images=[types_pb2.Image(encoded=png((8, 8)))] * 9, query="the item 1")
    with pytest.raises(grpc.RpcError) as caught:
        stub.Point(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_images_per_request" in caught.value.details()
