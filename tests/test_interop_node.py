"""Cross-language interop: a Node.js client built only from protos/ gets the same points as the Python client.

The client is tests/interop/node/point_client.js (@grpc/grpc-js + @grpc/proto-loader, pinned in its
package-lock.json). It runs against a real server on loopback with the scripted tiny model.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import grpc
import numpy as np
import pytest
from server_helpers import png, scripted_model

from molmo_agent.server.app import BackgroundServer
from molmo_agent.server.config import ServerConfig
from molmo_agent.v1 import service_pb2, service_pb2_grpc, types_pb2

NODE_DIR = Path(__file__).resolve().parent / "interop" / "node"
CLIENT = NODE_DIR / "point_client.js"
NODE = shutil.which("node")
WIDTH, HEIGHT = 640, 480
QUERY = "the item 37"
EXPECTED_XY = (37 * 10 / 1000 * WIDTH, 0.5 * HEIGHT)  # (236.8, 240.0)
TOKEN = "s3cret"

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="Node.js is not installed (`node` is not on PATH)"),
    pytest.mark.skipif(
        not (NODE_DIR / "node_modules").is_dir(),
        reason="the Node client's packages are not installed: run `npm ci --prefix tests/interop/node`",
    ),
]


@pytest.fixture(scope="module")
def server(tiny_dir):
    with BackgroundServer(ServerConfig(port=0, warmup=False), scripted_model(tiny_dir)) as running:
        yield running


@pytest.fixture(scope="module")
def token_server(tiny_dir):
    config = ServerConfig(port=0, warmup=False, token=TOKEN)
    with BackgroundServer(config, scripted_model(tiny_dir)) as running:
        yield running


@pytest.fixture(scope="module")
def stub(server):
    channel = grpc.insecure_channel(server.target)
    yield service_pb2_grpc.MolmoAgentStub(channel)
    channel.close()


@pytest.fixture
def png_path(tmp_path):
    path = tmp_path / "frame.png"
    path.write_bytes(png((WIDTH, HEIGHT)))
    return path


@pytest.fixture
def bgr_frame(tmp_path):
    """A 640x480 BGR8 frame with a gradient (so byte order matters) and its bytes on disk."""
    frame = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    frame[..., 0] = np.arange(WIDTH, dtype=np.uint32)[None, :] % 256
    frame[..., 1] = np.arange(HEIGHT, dtype=np.uint32)[:, None] % 256
    frame[..., 2] = 200
    path = tmp_path / "frame.bgr"
    path.write_bytes(frame.tobytes())
    return frame, path


def run_node(target: str, query: str, image: Path | str, *extra: str) -> tuple[int, dict]:
    result = subprocess.run(
        [NODE, str(CLIENT), target, query, str(image), *extra, "--timeout-ms", "30000"],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=NODE_DIR,
    )
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result.returncode, json.loads(lines[0])


def node_point(target: str, query: str, image: Path | str, *extra: str) -> dict:
    code, response = run_node(target, query, image, *extra)
    assert code == 0 and "error" not in response, response
    return response


def point_tuples(points) -> list[tuple]:
    """(x, y, label, object_id, image_index) for protobuf messages or the Node client's JSON dicts."""
    fields = ("x", "y", "label", "object_id", "image_index")
    return [
        tuple(p[f] for f in fields) if isinstance(p, dict) else tuple(getattr(p, f) for f in fields)
        for p in points
    ]


def python_point(stub, image: types_pb2.Image, query: str = QUERY) -> service_pb2.PointResponse:
    return stub.Point(service_pb2.PointRequest(images=[image], query=query), timeout=30)


def assert_expected(points: list[tuple]) -> None:
    assert len(points) == 1, points
    x, y, label, object_id, image_index = points[0]
    assert (x, y) == (pytest.approx(EXPECTED_XY[0]), pytest.approx(EXPECTED_XY[1]))
    assert (label, object_id, image_index) == ("item 37", 1, 0)


def test_node_and_python_get_the_same_points_for_an_encoded_image(server, stub, png_path):
    from_node = node_point(server.target, QUERY, png_path)
    from_python = python_point(stub, types_pb2.Image(encoded=png_path.read_bytes()))

    assert point_tuples(from_node["points"]) == point_tuples(from_python.points)
    assert_expected(point_tuples(from_node["points"]))
    node_point0, python_point0 = from_node["points"][0], from_python.points[0]
    assert (node_point0["x_norm"], node_point0["y_norm"]) == (python_point0.x_norm, python_point0.y_norm)
    assert from_node["count"] == from_python.count == 1
    assert from_node["text"] == from_python.text == '<points coords="1 1 370 500">item 37</points>'
    assert from_node["model_id"] == from_python.model_id and from_node["model_id"]
    assert from_node["timing"]["total_ms"] > 0 and from_node["timing"]["batch_size"] >= 1


def test_node_and_python_get_the_same_points_for_a_raw_bgr_frame(server, stub, bgr_frame):
    frame, raw_path = bgr_frame
    from_node = node_point(server.target, QUERY, "-", "--raw-bgr", str(WIDTH), str(HEIGHT), str(raw_path))
    raw = types_pb2.RawImage(
        width=WIDTH,
        height=HEIGHT,
        stride=WIDTH * 3,
        format=types_pb2.PIXEL_FORMAT_BGR8,
        data=frame.tobytes(),
    )
    from_python = python_point(stub, types_pb2.Image(raw=raw))

    assert point_tuples(from_node["points"]) == point_tuples(from_python.points)
    assert_expected(point_tuples(from_node["points"]))


def test_node_sees_invalid_argument_for_an_empty_query(server, png_path):
    code, response = run_node(server.target, "", png_path)
    assert code == 1
    assert response["error"]["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0] == 3
    assert response["error"]["details"]


def test_node_with_the_right_token_gets_points(token_server, png_path):
    response = node_point(token_server.target, QUERY, png_path, "--token", TOKEN)
    assert_expected(point_tuples(response["points"]))


@pytest.mark.parametrize("token", [None, "wrong"], ids=["no-token", "wrong-token"])
def test_node_without_the_right_token_is_unauthenticated(token_server, png_path, token):
    extra = ("--token", token) if token else ()
    code, response = run_node(token_server.target, QUERY, png_path, *extra)
    assert code == 1
    assert response["error"]["code"] == grpc.StatusCode.UNAUTHENTICATED.value[0] == 16
    assert "token" in response["error"]["details"]
