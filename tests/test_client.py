"""The Python client against a real server on loopback (the tiny Molmo2, answers scripted per request)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from PIL import Image
from server_helpers import png, scripted_model, self_signed_certificate

import molmo_agent as ma
from molmo_agent import client as client_module
from molmo_agent.client import Client, ClientError, PointReply, TlsConfig
from molmo_agent.server.app import BackgroundServer
from molmo_agent.server.config import ServerConfig

ROOT = Path(__file__).resolve().parent.parent
WIDTH, HEIGHT = 640, 480
INTRINSICS = (500.0, 510.0, 320.0, 240.0)  # fx, fy, cx, cy


def expected_xyz(u: float, v: float, metres: float) -> np.ndarray:
    fx, fy, cx, cy = INTRINSICS
    return np.array([(u - cx) / fx * metres, (v - cy) / fy * metres, metres])


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_dir):
    config = ServerConfig(port=0, warmup=False, max_batch_wait_ms=0)
    with BackgroundServer(config, scripted_model(tiny_dir)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with Client(server.target) as connected:
        yield connected


# -- round trips ---------------------------------------------------------------------------------------------


def test_every_image_kind_gives_the_same_pixel_points(client, tmp_path):
    rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    rgb[..., 0] = 200  # red, so a channel mix-up would still decode but differ from the PNG
    path = tmp_path / "frame.png"
    Image.fromarray(rgb).save(path)
    kinds = {
        "pil": {"image": Image.fromarray(rgb)},
        "numpy rgb": {"image": rgb},
        "numpy bgr": {"image": np.ascontiguousarray(rgb[..., ::-1]), "bgr": True},
        "png bytes": {"image": path.read_bytes()},
        "path": {"image": path},
        "str path, png re-encoded": {"image": str(path), "encoding": "png"},
    }
    for name, kwargs in kinds.items():
        reply = client.point(query="the item 25", **kwargs)
        assert isinstance(reply, PointReply)
        assert [(p.x, p.y) for p in reply.points] == [(160.0, 240.0)], name
        assert reply.points[0].label == "item 25" and reply.count == 1
        assert reply.camera_xyz == [None] and reply.base_xyz == [None]
        assert reply.model_id and reply.text.startswith("<points")
        assert reply.timing["total_ms"] >= reply.timing["model_ms"] > 0
        assert reply.timing["batch_size"] >= 1


def test_several_images_in_one_request(client):
    reply = client.point([png((320, 240)), png((640, 480))], "the item 50")
    assert reply.points[0].image_index == 0 and reply.points[0].x == pytest.approx(160.0)


def test_count_act_generate(client):
    assert client.count(png(), "the item 12") == 1
    act = client.act(
        png(), "Open the item 50", step="Tap it", history=[ma.Action.from_dict({"type": "wait"})]
    )
    assert act.action is None and act.reason  # the scripted answer is a point, not an action
    assert act.text.startswith("<points") and act.timing["model_ms"] > 0
    generated = client.generate(png(), "Find the item 30")
    assert generated.text.startswith('<points coords="1 1 300 500">item 30</points>')
    assert generated.points[0].x == pytest.approx(192.0)
    short = client.generate(png(), "Find the item 30", max_new_tokens=5, temperature=0.5, top_p=0.9)
    assert len(short.text) < len(generated.text) and short.points == []


def test_model_info_and_health(client):
    info = client.model_info()
    assert info["family"] == "molmo2" and info["device"] == "cpu"
    assert isinstance(info["num_parameters"], int) and info["num_parameters"] > 0
    assert info["limits"]["max_message_bytes"] >= 3840 * 2160 * 3
    assert info["counters"]["requests"] > 0
    assert client.health() == "SERVING"
    assert client.health("molmo_agent.v1.MolmoAgent") == "SERVING"


def test_ma_client_is_the_client_class():
    assert ma.Client is Client


def test_a_raw_4k_bgr_frame_fits(client):
    frame = np.zeros((2160, 3840, 3), np.uint8)
    assert client.point(frame, "the item 7", bgr=True).points[0].x == pytest.approx(0.07 * 3840)


# -- depth -> 3D -------------------------------------------------------------------------------------------


def test_depth_intrinsics_and_extrinsic_give_the_hand_computed_point(client):
    metres = 1.25
    depth = np.full((HEIGHT, WIDTH), int(metres * 1000), np.uint16)
    camera_to_base = np.eye(4)
    camera_to_base[:3, 3] = [1.0, 2.0, 3.0]
    reply = client.point(
        np.zeros((HEIGHT, WIDTH, 3), np.uint8),
        "the item 25",
        bgr=True,
        depth=depth,
        intrinsics=INTRINSICS,
        camera_to_base=camera_to_base,
        depth_window=3,
    )
    camera = expected_xyz(0.25 * WIDTH, 0.5 * HEIGHT, metres)
    np.testing.assert_allclose(reply.camera_xyz[0], camera, atol=1e-6)
    np.testing.assert_allclose(reply.base_xyz[0], camera + np.array([1.0, 2.0, 3.0]), atol=1e-6)
    assert reply.depth_notes == [""]


def test_a_depth_hole_gives_a_note(client):
    reply = client.point(
        png(), "the item 25", depth=np.zeros((HEIGHT, WIDTH), np.uint16), intrinsics=INTRINSICS
    )
    assert reply.camera_xyz == [None] and "depth" in reply.depth_notes[0]


# -- streaming ---------------------------------------------------------------------------------------------


def test_stream_point_answers_the_last_frame_and_accounts_for_every_frame(client):
    sent = []

    def frames():
        for i in range(10):
            sent.append(i)
            yield (f"f{i}", np.zeros((120, 160, 3), np.uint8))

    replies = list(client.stream_point(frames(), "the item 20", bgr=True))
    assert len(sent) == 10
    assert replies[-1].frame_id == "f9"
    assert len(replies) + sum(r.frames_dropped for r in replies) == 10
    assert all(r.points[0].x == pytest.approx(0.2 * 160) for r in replies)


def test_a_stream_from_an_endless_camera_stops_when_the_caller_does(client):
    def camera():
        index = 0
        while True:
            index += 1
            time.sleep(0.01)
            yield np.full((48, 64, 3), index % 255, np.uint8)

    replies = client.stream_point(camera(), "the item 50", bgr=True)
    first = next(replies)
    replies.close()  # the call is cancelled; the server goes on serving
    assert first.points[0].x == pytest.approx(32.0) and first.frame_timestamp > 0
    assert client.count(png((32, 32)), "the item 1") == 1


def test_stream_frames_as_dicts_carry_timestamp_and_depth(client):
    depth = np.full((HEIGHT, WIDTH), 800, np.uint16)
    frames = [{"image": png(), "frame_id": "a", "timestamp": 12.5, "depth": depth}]
    (reply,) = client.stream_point(iter(frames), "the item 25", intrinsics=INTRINSICS)
    assert (reply.frame_id, reply.frame_timestamp) == ("a", 12.5)
    np.testing.assert_allclose(reply.camera_xyz[0], expected_xyz(160, 240, 0.8), atol=1e-6)


def test_a_bad_frame_in_a_stream_raises_its_own_error(client):
    frames = iter([png(), "no/such/file.png"])
    with pytest.raises(ma.ImageInputError):
        list(client.stream_point(frames, "the item 3"))


# -- errors and retries ------------------------------------------------------------------------------------


def test_bad_input_is_invalid_argument_with_the_servers_message(client):
    with pytest.raises(ClientError) as caught:
        client.point(png(), "x" * 100_000)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_query_chars" in caught.value.details
    assert str(caught.value).startswith("Point failed: INVALID_ARGUMENT: the query has 100000 characters")
    with pytest.raises(ClientError, match="max_new_tokens") as caught:
        client.generate(png(), "hi", max_new_tokens=100_000)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_invalid_argument_is_not_retried(client, monkeypatch):
    sleeps = []
    monkeypatch.setattr(client_module, "_sleep", sleeps.append)
    before = client.model_info()["counters"]["errors_by_code"].get("INVALID_ARGUMENT", 0)
    with pytest.raises(ClientError):
        client.point(png(), "   ")
    after = client.model_info()["counters"]["errors_by_code"]["INVALID_ARGUMENT"]
    assert after - before == 1 and sleeps == []


def test_unreachable_server_is_unavailable_after_retries_naming_the_target(monkeypatch):
    sleeps = []
    monkeypatch.setattr(client_module, "_sleep", lambda s: (sleeps.append(s), time.sleep(s)))
    target = f"127.0.0.1:{free_port()}"
    with Client(target, retries=3, backoff_s=0.05) as client, pytest.raises(ClientError) as caught:
        client.point(png((32, 32)), "the item 1")
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert target in str(caught.value) and "4 attempts" in str(caught.value)
    assert sleeps == [0.05, 0.1, 0.2]


def test_a_retry_finds_a_server_that_comes_up(tiny_dir, monkeypatch):
    port = free_port()
    holder = {}

    def start_server_then_sleep(seconds):
        if "server" not in holder:
            holder["server"] = BackgroundServer(
                ServerConfig(port=port, warmup=False), scripted_model(tiny_dir)
            )
        time.sleep(seconds)

    monkeypatch.setattr(client_module, "_sleep", start_server_then_sleep)
    try:
        with Client(f"127.0.0.1:{port}", retries=5) as client:
            assert client.point(png((64, 48)), "the item 50").points[0].x == pytest.approx(32.0)
    finally:
        if "server" in holder:
            holder["server"].stop()


def test_a_stopped_server_is_unavailable(tiny_dir):
    server = BackgroundServer(ServerConfig(port=0, warmup=False), scripted_model(tiny_dir))
    with Client(server.target, retries=1, backoff_s=0.05) as client:
        assert client.health() == "SERVING"
        server.stop()
        with pytest.raises(ClientError) as caught:
            client.point(png((32, 32)), "the item 1")
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


def test_deadline_is_applied(client):
    with pytest.raises(ClientError) as caught:
        client.point(png(), "the item 1", timeout_s=0.000_1)
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


# -- auth and TLS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_server(tiny_dir):
    with BackgroundServer(
        ServerConfig(port=0, warmup=False, token="s3cret"), scripted_model(tiny_dir)
    ) as running:
        yield running


@pytest.mark.parametrize("token", [None, "wrong"])
def test_missing_or_wrong_token_is_unauthenticated(auth_server, token):
    with Client(auth_server.target, token=token) as client:
        with pytest.raises(ClientError) as caught:
            client.point(png((32, 32)), "the item 1")
        assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(ClientError) as caught:
            list(client.stream_point([png((32, 32))], "the item 1"))
        assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
        assert client.health() == "SERVING"  # health checks stay open


def test_right_token_works_on_a_plaintext_channel(auth_server):
    with Client(auth_server.target, token="s3cret") as client:
        assert client.point(png((32, 32)), "the item 50").points[0].x == pytest.approx(16.0)
        assert [r.frame_id for r in client.stream_point([("only", png((32, 32)))], "the item 1")] == ["only"]


@pytest.fixture(scope="module")
def tls(tiny_dir, tmp_path_factory):
    cert, key = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    config = ServerConfig(port=0, warmup=False, tls_cert=cert, tls_key=key)
    with BackgroundServer(config, scripted_model(tiny_dir)) as running:
        yield running, cert


def test_tls_round_trip(tls):
    server, cert = tls
    with Client(f"localhost:{server.port}", tls=TlsConfig(root_certificates=cert)) as client:
        assert client.point(png((32, 32)), "the item 50").points[0].x == pytest.approx(16.0)
        assert client.health() == "SERVING"
    # an IP address target with the certificate's name, the certificate given as bytes
    config = TlsConfig(root_certificates=cert.read_bytes(), server_name="localhost")
    with Client(server.target, tls=config) as client:
        assert client.count(png((32, 32)), "the item 5") == 1


def test_plaintext_client_against_a_tls_server_fails(tls):
    server, _ = tls
    with Client(server.target, retries=0) as client, pytest.raises(ClientError) as caught:
        client.point(png((32, 32)), "the item 1", timeout_s=5)
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


def test_token_and_tls_together(tiny_dir, tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    config = ServerConfig(port=0, warmup=False, tls_cert=cert, tls_key=key, token="s3cret")
    with BackgroundServer(config, scripted_model(tiny_dir)) as server:
        target, tls_config = f"localhost:{server.port}", TlsConfig(root_certificates=cert)
        with Client(target, tls=tls_config, token="s3cret") as client:
            assert client.point(png((32, 32)), "the item 50").points[0].label == "item 50"
            assert [r.frame_id for r in client.stream_point([("x", png((32, 32)))], "the item 1")] == ["x"]
        with Client(target, tls=tls_config, token="wrong") as client, pytest.raises(ClientError) as caught:
            client.point(png((32, 32)), "the item 1")
        assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_mutual_tls_needs_a_client_certificate(tiny_dir, tmp_path):
    server_dir, client_dir = tmp_path / "server", tmp_path / "client"
    server_dir.mkdir()
    client_dir.mkdir()
    server_cert, server_key = self_signed_certificate(server_dir)
    client_cert, client_key = self_signed_certificate(client_dir, host="robot-1")
    config = ServerConfig(
        port=0, warmup=False, tls_cert=server_cert, tls_key=server_key, tls_client_ca=client_cert
    )
    with BackgroundServer(config, scripted_model(tiny_dir)) as server:
        target = f"localhost:{server.port}"
        with_identity = TlsConfig(
            root_certificates=server_cert, certificate_chain=client_cert, private_key=client_key
        )
        with Client(target, tls=with_identity) as client:
            assert client.point(png((32, 32)), "the item 50").points[0].label == "item 50"
        without_identity = TlsConfig(root_certificates=server_cert)
        with Client(target, tls=without_identity, retries=0) as client, pytest.raises(ClientError) as caught:
            client.point(png((32, 32)), "the item 1", timeout_s=5)
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE


def test_tls_config_needs_key_and_certificate_together():
    with pytest.raises(ValueError, match="mutual TLS"):
        TlsConfig(certificate_chain=b"cert")


# -- the robot example -------------------------------------------------------------------------------------


def run_example(*args: str) -> subprocess.CompletedProcess:
    script = ROOT / "examples" / "robot_client.py"
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def test_robot_example_streams_a_folder_with_depth(server, tmp_path):
    frames, depths = tmp_path / "frames", tmp_path / "depth"
    frames.mkdir()
    depths.mkdir()
    metres = {"f0.png": 1.0, "f1.png": 1.25, "f2.png": 1.5}
    for name, z in metres.items():
        cv2.imwrite(str(frames / name), np.full((HEIGHT, WIDTH, 3), 90, np.uint8))
        cv2.imwrite(str(depths / name), np.full((HEIGHT, WIDTH), int(z * 1000), np.uint16))
    fx, fy, cx, cy = (str(v) for v in INTRINSICS)
    result = run_example(
        server.target, "the item 25", "--source", str(frames), "--depth-folder", str(depths),
        "--fx", fx, "--fy", fy, "--cx", cx, "--cy", cy,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    answered = re.findall(r"frame (f\d\.png): 1 point\(s\), (\d+) dropped", result.stdout)
    assert answered[-1][0] == "f2.png"
    assert len(answered) + sum(int(dropped) for _, dropped in answered) == 3
    xyz = re.findall(
        r"pixel \(160\.0, 240\.0\)  camera xyz \(([-\d.]+), ([-\d.]+), ([-\d.]+)\) m", result.stdout
    )
    assert len(xyz) == len(answered), result.stdout
    for (name, _), values in zip(answered, xyz, strict=True):
        np.testing.assert_allclose(
            [float(v) for v in values], expected_xyz(160, 240, metres[name]), atol=1e-4
        )


def test_robot_example_says_when_the_source_cannot_be_opened(server, tmp_path):
    result = run_example(server.target, "the mug", "--source", str(tmp_path / "missing.mp4"))
    assert result.returncode != 0
    assert "cannot open video source" in result.stderr


def test_wait_for_serving_times_out_clearly_when_nothing_listens():
    with Client("127.0.0.1:9", retries=0) as client, pytest.raises(ClientError) as caught:
        client.wait_for_serving(timeout_s=1.0, poll_s=0.1)
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "not serving after 1.0 s" in str(caught.value)
