"""Property-based fuzzing of every request message: whatever a client sends, the server answers with a status
that names the client's mistake (never INTERNAL or UNKNOWN) and stays SERVING.

Messages are built from the protos' own fields: text with special tokens, emoji and control characters,
images that are valid, truncated, random or mis-sized, raw layouts and enum values out of range, depth and
calibration with NaN, infinities and extreme finite values, sampling options at and past their edges, and
plain random bytes for every method. Examples are bounded so the file runs in well under a minute.
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import png, scripted_model

from molmo_agent import wire
from molmo_agent.server.app import BackgroundServer
from molmo_agent.server.config import ServerConfig
from molmo_agent.text_guard import MOLMO_SPECIAL_TOKENS
from molmo_agent.v1 import service_pb2, service_pb2_grpc, types_pb2

BUGS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
FUZZ = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

# -- strategies ----------------------------------------------------------------------------------------------

fragments = st.sampled_from(
    [
        *sorted(MOLMO_SPECIAL_TOKENS),
        "<|vision_start|>",
        "<think>",
        "\U0001f600" * 300,
        "\x00",
        "the item 42",
        " ",
    ]
)
texts = st.one_of(
    st.text(max_size=40),
    st.lists(st.one_of(fragments, st.text(max_size=8)), max_size=4).map("".join),
    st.integers(0, 100).map(lambda n: f"the item {n}"),
)
doubles = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-320, 1e308, -1e308, 5e-324, 1.0, 32.0]),
)
floats32 = st.one_of(st.floats(width=32), st.sampled_from([0.0, 1e-45, 0.01, 1.0, 2.0, 2.5]))
sizes = st.tuples(st.integers(0, 40), st.integers(0, 40))


def sometimes(draw, wild, valid):
    """Mostly a valid value, a wild one a sixth of the time: requests must get past the first check
    often enough to reach decoding, batching, the model and the 3-D step."""
    return draw(wild) if draw(st.integers(0, 5)) == 5 else draw(valid)


queries = st.integers(0, 100).map(lambda n: f"the item {n}")
raw_formats = st.integers(1, 3)


@st.composite
def good_raw(draw) -> types_pb2.Image:
    width, height = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    pixel_format = draw(raw_formats)
    data = bytes([draw(st.integers(0, 255))]) * (width * height * (1 if pixel_format == 3 else 3))
    return types_pb2.Image(raw=types_pb2.RawImage(width=width, height=height, format=pixel_format, data=data))


@st.composite
def wild_raw(draw) -> types_pb2.Image:
    width, height = draw(sizes)
    pixel_format = draw(st.integers(0, 5))
    exact = width * height * (1 if pixel_format == 3 else 3)
    length = draw(st.one_of(st.just(exact), st.integers(0, exact + 16)))
    stride = draw(st.one_of(st.just(0), st.integers(0, 200)))
    raw = types_pb2.RawImage(
        width=width, height=height, stride=stride, format=pixel_format, data=b"\x7f" * length
    )
    return types_pb2.Image(raw=raw)


@st.composite
def encoded_images(draw) -> types_pb2.Image:
    width, height = draw(st.tuples(st.integers(1, 48), st.integers(1, 48)))
    data = png((width, height))
    cut = draw(st.integers(0, len(data)))
    junk = draw(st.binary(max_size=64))
    return types_pb2.Image(encoded=draw(st.sampled_from([data[:cut], junk])))


good_images = st.one_of(
    good_raw(),
    st.tuples(st.integers(1, 48), st.integers(1, 48)).map(lambda size: types_pb2.Image(encoded=png(size))),
)
wild_images = st.one_of(wild_raw(), encoded_images(), st.just(types_pb2.Image()))
images = st.one_of(good_images, wild_images)


@st.composite
def image_lists(draw, most: int = 2) -> list:
    extra = sometimes(draw, st.lists(images, min_size=1, max_size=most), st.just([]))
    return [sometimes(draw, wild_images, good_images), *extra]


@st.composite
def wild_depths(draw) -> types_pb2.DepthImage:
    width, height = draw(sizes)
    encoding = draw(st.integers(0, 4))
    data = b"\x10" * draw(st.integers(0, width * height * 4 + 8))
    return types_pb2.DepthImage(width=width, height=height, encoding=encoding, data=data)


def depth_for(draw, size: tuple[int, int]) -> types_pb2.DepthImage:
    """Depth of the colour image's size: uint16 millimetres, or float32 metres with NaN, inf and extremes."""
    width, height = size
    if draw(st.booleans()):
        values = np.full(width * height, draw(st.integers(0, 65535)), np.uint16)
        return types_pb2.DepthImage(
            width=width, height=height, encoding=1, data=values.astype("<u2").tobytes()
        )
    metres = draw(st.lists(st.floats(width=32), min_size=1, max_size=4))
    values = np.resize(np.array(metres, np.float32), width * height)
    return types_pb2.DepthImage(width=width, height=height, encoding=2, data=values.astype("<f4").tobytes())


@st.composite
def calibrations(draw) -> dict:
    focal, centre = st.floats(1.0, 2000.0), st.floats(-100.0, 100.0)
    distortion = st.one_of(
        st.just([]), st.lists(st.floats(-1, 1), min_size=5, max_size=5), st.lists(doubles, max_size=15)
    )
    fields = {
        "intrinsics": types_pb2.CameraIntrinsics(
            fx=sometimes(draw, doubles, focal),
            fy=sometimes(draw, doubles, focal),
            cx=sometimes(draw, doubles, centre),
            cy=sometimes(draw, doubles, centre),
            distortion=draw(distortion),
        )
    }
    if draw(st.booleans()):
        rigid = np.eye(4)
        rigid[:3, 3] = draw(st.tuples(doubles, doubles, doubles))
        wild = st.lists(doubles, max_size=20)
        fields["camera_to_base"] = types_pb2.RigidTransform(
            matrix=sometimes(draw, wild, st.just(rigid.ravel().tolist()))
        )
    return fields


def _size(image: types_pb2.Image) -> tuple[int, int]:
    if image.HasField("raw"):
        return image.raw.width, image.raw.height
    from io import BytesIO

    from PIL import Image

    try:
        return Image.open(BytesIO(image.encoded)).size
    except Exception:
        return 8, 8


@st.composite
def point_requests(draw) -> service_pb2.PointRequest:
    colour = draw(image_lists())
    fields = {}
    if draw(st.integers(0, 2)) > 0:  # depth and calibration two times in three: the 3-D step's edges
        fields = draw(calibrations())
        fields["depth"] = sometimes(draw, wild_depths(), st.just(depth_for(draw, _size(colour[0]))))
    return service_pb2.PointRequest(
        images=colour,
        query=sometimes(draw, texts, queries),
        mode=sometimes(draw, st.integers(-3, 6), st.integers(0, 2)),
        depth_window=sometimes(draw, st.integers(0, 300), st.sampled_from([0, 1, 3, 5])),
        frame_id=sometimes(draw, texts, st.just("f1")),
        frame_timestamp=draw(doubles),
        **fields,
    )


@st.composite
def wild_actions(draw) -> types_pb2.Action:
    action = types_pb2.Action(type=draw(st.integers(-2, 20)), keys=draw(st.lists(texts, max_size=2)))
    for name in ("x", "y", "x2", "y2"):
        if draw(st.booleans()):
            setattr(action, name, draw(doubles))
    for name in ("direction", "text", "app_name"):
        if draw(st.booleans()):
            setattr(action, name, draw(texts))
    if draw(st.booleans()):
        action.amount = draw(st.integers(-(2**31), 2**31 - 1))
    return action


good_actions = st.sampled_from(
    [
        types_pb2.Action(type=types_pb2.ACTION_TYPE_CLICK, x=10.0, y=20.0),
        types_pb2.Action(type=types_pb2.ACTION_TYPE_INPUT_TEXT, text="hello"),
        types_pb2.Action(type=types_pb2.ACTION_TYPE_NAVIGATE_BACK),
    ]
)


@st.composite
def act_requests(draw) -> service_pb2.ActRequest:
    request = service_pb2.ActRequest(
        goal=sometimes(draw, texts, queries.map(lambda q: f"open {q}")),
        step=sometimes(draw, texts, st.sampled_from(["", "tap the item 3"])),
        history=draw(st.lists(st.one_of(good_actions, wild_actions()), max_size=2)),
        max_new_tokens=sometimes(draw, st.integers(0, 5000), st.integers(1, 16)),
    )
    if draw(st.integers(0, 7)) < 7:
        request.screenshot.CopyFrom(sometimes(draw, wild_images, good_images))
    return request


@st.composite
def generate_requests(draw) -> service_pb2.GenerateRequest:
    options = service_pb2.GenerationOptions(
        max_new_tokens=sometimes(draw, st.integers(0, 100_000), st.integers(1, 8)),
        temperature=sometimes(draw, floats32, st.sampled_from([0.0, 0.01, 0.7, 2.0])),
        top_p=sometimes(draw, floats32, st.sampled_from([0.0, 0.1, 1.0])),
        stop_at_answer=draw(st.booleans()),
        stop_at_coords=draw(st.booleans()),
    )
    return service_pb2.GenerateRequest(
        images=draw(image_lists()), prompt=sometimes(draw, texts, queries), options=options
    )


# -- the server under fuzzing --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tiny_dir):
    config = ServerConfig(
        port=0, warmup=False, max_batch_wait_ms=0, max_new_tokens=16, max_request_pixels=4_000_000
    )
    with BackgroundServer(config, scripted_model(tiny_dir)) as running:
        yield running


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.target) as opened:
        yield opened


def answer_status(call, request) -> grpc.StatusCode:
    try:
        call(request, timeout=60)
    except grpc.RpcError as error:
        assert error.code() not in BUGS, f"{error.code().name}: {error.details()}\nrequest: {request!r:.600}"
        return error.code()
    return grpc.StatusCode.OK


@FUZZ
@given(request=point_requests())
def test_point_never_answers_internal(channel, request):
    answer_status(service_pb2_grpc.MolmoAgentStub(channel).Point, request)


@FUZZ
@given(request=act_requests())
def test_act_never_answers_internal(channel, request):
    answer_status(service_pb2_grpc.MolmoAgentStub(channel).Act, request)


@FUZZ
@given(request=generate_requests())
def test_generate_never_answers_internal(channel, request):
    answer_status(service_pb2_grpc.MolmoAgentStub(channel).Generate, request)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(point_requests(), min_size=1, max_size=3))
def test_stream_point_never_answers_internal(channel, frames):
    stream = service_pb2_grpc.MolmoAgentStub(channel).StreamPoint(iter(frames), timeout=60)
    try:
        for _ in stream:
            pass
    except grpc.RpcError as error:
        assert error.code() not in BUGS, f"{error.code().name}: {error.details()}"


METHODS = ["Point", "Act", "Generate", "GetModelInfo"]


@FUZZ
@given(method=st.sampled_from(METHODS), payload=st.binary(max_size=200))
def test_random_bytes_never_answer_internal(channel, method, payload):
    call = channel.unary_unary(
        f"/molmo_agent.v1.MolmoAgent/{method}",
        request_serializer=lambda raw: raw,
        response_deserializer=lambda raw: raw,
    )
    answer_status(call, payload)


def test_the_server_is_still_serving_and_answering_after_the_fuzzing(channel):
    status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    frame = wire.image_to_proto(np.zeros((48, 64, 3), np.uint8))
    reply = service_pb2_grpc.MolmoAgentStub(channel).Point(
        service_pb2.PointRequest(images=[frame], query="the item 9"), timeout=30
    )
    assert reply.points[0].label == "item 9"
    counters = (
        service_pb2_grpc.MolmoAgentStub(channel)
        .GetModelInfo(service_pb2.GetModelInfoRequest(), timeout=10)
        .counters
    )
    assert not {"INTERNAL", "UNKNOWN"} & set(counters.errors_by_code)
