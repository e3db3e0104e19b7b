"""Regressions from the adversarial run against the server (issue 31): what fails past validation.

A real loopback server with the scripted tiny Molmo2: special tokens in every text field, one request failing
alone inside a batch, numeric edges of depth and sampling, request budgets, and the smaller server items.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from server_helpers import png, run_threads, scripted_model

from molmo_agent import wire
from molmo_agent.geometry import CameraIntrinsics
from molmo_agent.server.app import BackgroundServer, BindError, serve
from molmo_agent.server.config import ServerConfig
from molmo_agent.v1 import service_pb2, service_pb2_grpc, types_pb2

SPECIAL = ["<im_patch>", "<|image|>", "<|video|>", "<|im_end|>", "<im_col>", "<|vision_start|>"]


@pytest.fixture(scope="module")
def server(tiny_dir):
    config = ServerConfig(
        port=0, warmup=False, max_batch_size=8, max_batch_wait_ms=50, max_request_pixels=1_000_000
    )
    with BackgroundServer(config, scripted_model(tiny_dir)) as running:
        yield running


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.target) as channel:
        yield service_pb2_grpc.MolmoAgentStub(channel)


def image(size=(64, 48)) -> types_pb2.Image:
    return types_pb2.Image(encoded=png(size))


def point(query="the item 7", **fields) -> service_pb2.PointRequest:
    fields.setdefault("images", [image()])
    return service_pb2.PointRequest(query=query, **fields)


def refused(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=30)
    return caught.value


def counters(stub) -> service_pb2.Counters:
    return stub.GetModelInfo(service_pb2.GetModelInfoRequest(), timeout=10).counters


# -- text never reaches the tokenizer with special tokens ----------------------------------------------------


def _text_cases(token: str) -> dict:
    act = {"screenshot": image(), "goal": "open the settings"}
    history = types_pb2.Action(type=types_pb2.ACTION_TYPE_INPUT_TEXT, text=f"hello {token}")
    return {
        "query": ("Point", point(f"the {token} mug")),
        "frame_id": ("Point", point(frame_id=f"frame {token}")),
        "goal": ("Act", service_pb2.ActRequest(**{**act, "goal": f"open {token}"})),
        "step instruction": ("Act", service_pb2.ActRequest(**act, step=f"tap {token}")),
        "history[0].text": ("Act", service_pb2.ActRequest(**act, history=[history])),
        "prompt": ("Generate", service_pb2.GenerateRequest(images=[image()], prompt=f"describe {token}")),
    }


@pytest.mark.parametrize("token", SPECIAL)
@pytest.mark.parametrize("field", list(_text_cases("x")))
def test_special_tokens_in_any_text_field_are_invalid_argument_naming_field_and_token(stub, token, field):
    method, request = _text_cases(token)[field]
    error = refused(getattr(stub, method), request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert field in error.details() and token in error.details()


def test_coordinates_are_text_not_special_tokens(stub):
    """Molmo2's tokenizer adds 000-999 as tokens; a query holding a number is ordinary text."""
    reply = stub.Point(point("the item 25 on shelf 250"), timeout=30)
    assert reply.points[0].x_norm == pytest.approx(0.25)


@pytest.mark.parametrize("token", ["<im_patch>", "<|image|>", "<|video|>"])
def test_python_api_refuses_special_tokens_in_every_entry_point(model, token):
    from molmo_agent.actions import Action, ActionType
    from molmo_agent.errors import QueryError

    screen = np.zeros((48, 64, 3), np.uint8)
    calls = {
        "query": lambda: model.point(screen, f"the {token}"),
        "query ": lambda: model.count([screen], [f"{token} mugs"]),
        "goal": lambda: model.act(screen, goal=f"open {token}"),
        "step instruction": lambda: model.act(screen, goal="open it", step=token),
        "history[0].text": lambda: model.act(
            screen, goal="open it", history=[Action(type=ActionType.INPUT_TEXT, text=token)]
        ),
        "prompt": lambda: model.generate(screen, f"say {token}"),
    }
    for field, call in calls.items():
        with pytest.raises(QueryError) as caught:
            call()
        assert field.strip() in str(caught.value) and token in str(caught.value)


def test_emoji_flood_is_refused_by_its_token_count(stub):
    error = refused(stub.Point, point("\U0001f600" * 2000))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_text_tokens" in error.details() and "tokens" in error.details()


def test_total_pixels_of_a_request_have_a_budget(stub):
    error = refused(stub.Point, point(images=[image((400, 400))] * 8))  # 1.28 M pixels > the fixture's 1 M
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert "max_request_pixels" in error.details()
    assert stub.Point(point(images=[image((400, 400))] * 2), timeout=30).points


# -- one request fails alone ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("poison", "code", "fragment"),
    [
        ("explode", grpc.StatusCode.RESOURCE_EXHAUSTED, "out of memory"),
        ("poison", grpc.StatusCode.INVALID_ARGUMENT, "refused this request"),
    ],
)
def test_a_poisoned_request_among_eight_concurrent_ones_fails_alone(stub, poison, code, fragment):
    before = counters(stub)
    queries = [f"the item {i + 1}" for i in range(8)]
    queries[5] = f"the {poison} item"
    results = run_threads(8, lambda i: stub.Point(point(queries[i]), timeout=60))
    for i, result in enumerate(results):
        if i == 5:
            assert isinstance(result, grpc.RpcError) and result.code() == code, result
            assert fragment in result.details()
        else:
            assert not isinstance(result, Exception), result
            assert result.points[0].label == f"item {i + 1}"
    after = counters(stub)
    assert after.failed_model_calls > before.failed_model_calls
    assert sum(after.batch_sizes.values()) > sum(before.batch_sizes.values())


def test_a_bug_in_the_model_call_is_internal_with_one_traceback(stub, caplog):
    with caplog.at_level(logging.INFO, logger="molmo_agent"):
        error = refused(stub.Point, point("the crash item"))
    assert error.code() == grpc.StatusCode.INTERNAL
    tracebacks = [record for record in caplog.records if record.exc_info]
    assert len(tracebacks) == 1, [record.getMessage() for record in tracebacks]
    assert stub.Point(point("the item 2"), timeout=30).points[0].label == "item 2"


# -- numeric edges ----------------------------------------------------------------------------------------


def _depth_request(query: str, intrinsics: CameraIntrinsics, **fields) -> service_pb2.PointRequest:
    depth = np.full((48, 64), 1000, np.uint16)
    return point(
        query,
        images=[wire.image_to_proto(np.zeros((48, 64, 3), np.uint8))],
        depth=wire.depth_to_proto(depth),
        intrinsics=wire.intrinsics_to_proto(intrinsics),
        **fields,
    )


def test_a_point_on_the_far_edge_reads_the_last_depth_pixel(stub):
    """Model coordinate 1000 is x = width exactly: on the image, one step past the last pixel centre."""
    reply = stub.Point(_depth_request("the item 100", CameraIntrinsics(50, 50, 32, 24)), timeout=30)
    (found,) = reply.points
    assert found.x == pytest.approx(64.0) and found.x_norm == pytest.approx(1.0)
    assert found.camera_xyz.z == pytest.approx(1.0) and not found.depth_note


def test_extreme_finite_calibration_gives_a_depth_note_not_inf(stub):
    tiny_focal = _depth_request("the item 90", CameraIntrinsics(1e-320, 1e-320, 32, 24))
    (found,) = stub.Point(tiny_focal, timeout=30).points
    assert not found.HasField("camera_xyz") and "finite" in found.depth_note
    far = np.eye(4)
    far[:3, 3] = 1.7e308
    shifted = _depth_request(
        "the item 90", CameraIntrinsics(1, 1, -1e308, 24), camera_to_base=wire.transform_to_proto(far)
    )
    (found,) = stub.Point(shifted, timeout=30).points
    assert not found.HasField("base_xyz") and "finite" in found.depth_note


@pytest.mark.parametrize(
    "options",
    [
        {"temperature": 1e-45},
        {"temperature": float("nan")},
        {"temperature": float("inf")},
        {"temperature": -1.0},
        {"temperature": 3.0},
        {"top_p": float("nan")},
        {"top_p": 1.5},
    ],
)
def test_sampling_parameters_out_of_range_are_invalid_argument(stub, options):
    request = service_pb2.GenerateRequest(
        images=[image()], prompt="describe", options=service_pb2.GenerationOptions(**options)
    )
    error = refused(stub.Generate, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert next(iter(options)) in error.details()


def test_a_sampled_answer_within_range_works(stub):
    options = service_pb2.GenerationOptions(temperature=0.01, top_p=0.5, max_new_tokens=4)
    assert stub.Generate(
        service_pb2.GenerateRequest(images=[image()], prompt="x", options=options), timeout=30
    )


def test_an_unknown_point_mode_is_refused(stub):
    error = refused(stub.Point, point(mode=7))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "POINT_MODE_COUNT" in error.details()


def test_an_invalid_history_action_is_refused(stub):
    request = service_pb2.ActRequest(screenshot=image(), goal="open it", history=[types_pb2.Action(type=99)])
    error = refused(stub.Act, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "history[0]" in error.details()


# -- smaller server items ---------------------------------------------------------------------------------


def test_token_scheme_is_case_insensitive_and_reflection_needs_the_token(tiny_dir):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    config = ServerConfig(port=0, warmup=False, token="s3cret")
    listing = reflection_pb2.ServerReflectionRequest(list_services="")
    with (
        BackgroundServer(config, scripted_model(tiny_dir)) as server,
        grpc.insecure_channel(server.target) as ch,
    ):
        stub = service_pb2_grpc.MolmoAgentStub(ch)
        for scheme in ("Bearer", "bearer", "BEARER"):
            info = stub.GetModelInfo(
                service_pb2.GetModelInfoRequest(),
                metadata=[("authorization", f"{scheme} s3cret")],
                timeout=10,
            )
            assert info.family == "molmo2"
        wrong = refused(stub.GetModelInfo, service_pb2.GetModelInfoRequest())
        assert wrong.code() == grpc.StatusCode.UNAUTHENTICATED
        reflect = reflection_pb2_grpc.ServerReflectionStub(ch)
        with pytest.raises(grpc.RpcError) as caught:
            next(reflect.ServerReflectionInfo(iter([listing]), timeout=10))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        answer = next(
            reflect.ServerReflectionInfo(
                iter([listing]), metadata=[("authorization", "Bearer s3cret")], timeout=10
            )
        )
        assert answer.list_services_response.service
        health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_health_on_a_new_connection_while_draining_is_not_serving(tiny_dir):
    model = scripted_model(tiny_dir, delay_s=1.5)
    server = BackgroundServer(ServerConfig(port=0, warmup=False), model)
    with grpc.insecure_channel(server.target) as channel:
        in_flight = service_pb2_grpc.MolmoAgentStub(channel).Point.future(point("the item 44"), timeout=30)
        time.sleep(0.3)
        stopper = threading.Thread(target=server.stop, kwargs={"grace_s": 10})
        stopper.start()
        time.sleep(0.3)
        with grpc.insecure_channel(server.target) as fresh:
            status = (
                health_pb2_grpc.HealthStub(fresh).Check(health_pb2.HealthCheckRequest(), timeout=5).status
            )
            late = refused(service_pb2_grpc.MolmoAgentStub(fresh).Point, point("the item 45"))
        assert in_flight.result().points[0].label == "item 44"
        stopper.join(30)
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert late.code() == grpc.StatusCode.UNAVAILABLE and "shutting down" in late.details()


def test_a_busy_port_is_a_bind_error_and_serve_exits_with_the_reason(server, tiny_dir):
    busy = ServerConfig(port=server.port, warmup=False)
    with pytest.raises(BindError, match="in use"):
        BackgroundServer(busy, scripted_model(tiny_dir))
    with pytest.raises(SystemExit) as caught:
        asyncio.run(serve(busy, scripted_model(tiny_dir)))
    assert "could not bind" in str(caught.value.code)


def test_warm_up_runs_the_servers_own_path_before_serving(tiny_dir):
    model = scripted_model(tiny_dir)
    with BackgroundServer(ServerConfig(port=0, warmup=True), model) as server:
        assert model.backend.calls == [1, 1], "model.warmup, then one request through decode and batcher"
        with grpc.insecure_channel(server.target) as channel:
            info = service_pb2_grpc.MolmoAgentStub(channel).GetModelInfo(
                service_pb2.GetModelInfoRequest(), timeout=10
            )
    assert info.limits.max_text_tokens == 1024 and info.limits.max_request_pixels == 64_000_000
