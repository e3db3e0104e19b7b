"""The MolmoAgent RPCs: thin async methods over the library's pipeline and the batcher.

Each request is validated against the server's limits first (cheap checks before any decoding), its
images are decoded in a worker thread (so decoding runs in parallel with the model, never behind it), the
model call goes through the batcher, and the answer is read by the same functions the library uses.
Errors the caller can fix are INVALID_ARGUMENT with a message saying what was wrong; INTERNAL is kept for bugs
in the server, never for something a client sent (see :func:`status_for`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
import numpy as np

from .. import prompts, wire
from ..backends.base import GenerationOptions, Request
from ..errors import MolmoAgentError
from ..geometry import point_to_3d
from ..images import ImageLimits, check_total_pixels
from ..model import (
    GENERATE_OPTIONS,
    POINT_OPTIONS,
    MolmoModel,
    act_options,
    action_texts,
    read_action,
    read_points,
)
from ..v1 import service_pb2, service_pb2_grpc, types_pb2
from .batcher import Batcher, DeadlinePassedError, ModelCallError, QueueFullError
from .config import ServerConfig
from .memory import after_decoding

logger = logging.getLogger(__name__)

SERVER_VERSION = "0.1.0"


class MalformedRequest:
    """Stands in for a request whose bytes did not parse (e.g. invalid UTF-8 in a string field)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def safe_deserializer(message_type) -> Callable[[bytes], object]:
    """Parse request bytes without letting a decode error become an opaque INTERNAL status."""

    def parse(data: bytes):
        try:
            return message_type.FromString(data)
        except Exception as exc:  # DecodeError, invalid UTF-8 in a string field
            return MalformedRequest(f"request is not a valid {message_type.DESCRIPTOR.name}: {exc}")

    return parse


@dataclass
class Counters:
    requests: int = 0
    frames_dropped: int = 0

    def __post_init__(self) -> None:
        self.errors_by_code: Counter = Counter()


class RequestFailed(Exception):
    """Carries the status code and message a handler answers with."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_POINT_MODES = {number: name for name, number in service_pb2.PointMode.items()}


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """Map an exception to a gRPC status; unknown exceptions are bugs and say INTERNAL."""
    if isinstance(exc, RequestFailed):
        return exc.code, exc.message
    if isinstance(exc, MolmoAgentError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, QueueFullError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
    if isinstance(exc, DeadlinePassedError):
        return grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the model could start"
    if isinstance(exc, ModelCallError):
        return _model_failure_status(exc.cause)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"


def _model_failure_status(cause: BaseException) -> tuple[grpc.StatusCode, str]:
    """A model call that failed for this request alone (its batch-mates were answered): the request is why.

    Out of memory is RESOURCE_EXHAUSTED; a ``ValueError`` is how processors and ``generate`` refuse inputs
    (token and feature counts, lengths), so it is INVALID_ARGUMENT; anything else is a bug: INTERNAL.
    """
    detail = f"{type(cause).__name__}: {cause}"
    if type(cause).__name__ == "OutOfMemoryError" or "out of memory" in str(cause).lower():
        return grpc.StatusCode.RESOURCE_EXHAUSTED, f"the model ran out of memory on this request: {detail}"
    if isinstance(cause, MolmoAgentError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(cause)
    if isinstance(cause, ValueError):
        return grpc.StatusCode.INVALID_ARGUMENT, f"the model refused this request: {detail}"
    return grpc.StatusCode.INTERNAL, f"internal error in the model call: {detail}"


def _traceback_of(exc: BaseException) -> BaseException:
    return exc.cause if isinstance(exc, ModelCallError) else exc


class MolmoAgentServicer(service_pb2_grpc.MolmoAgentServicer):
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.model: MolmoModel | None = None
        self.batcher: Batcher | None = None
        self.counters = Counters()
        self._ids = itertools.count(1)
        self.in_flight = 0
        self.draining = False

    def attach(self, model: MolmoModel, batcher: Batcher) -> None:
        """Start answering: the server accepts connections (and health checks) before the model is ready."""
        self.model, self.batcher = model, batcher

    def drain(self) -> None:
        """Shutting down: new model requests get UNAVAILABLE (a balanced client retries elsewhere) while the
        server still accepts connections, so health checks answer NOT_SERVING rather than failing."""
        self.draining = True

    async def warm_up(self) -> None:
        """One request through the server's own path (proto decode of JPEG, PNG and raw images in the worker
        threads, the batcher, a 640x480 point query), so the first client does not pay for it."""
        frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
        images = [
            wire.image_to_proto(frame, encoding="jpeg"),
            wire.image_to_proto(frame[:48, :64], encoding="png"),
            wire.image_to_proto(frame, bgr=True),
        ]
        request = service_pb2.PointRequest(images=images, query="the centre")
        await self._point(request, _NoDeadline(), time.monotonic(), None)

    # -- RPCs --

    async def Point(self, request, context):
        return await self._unary("Point", request, context, self._point)

    async def Act(self, request, context):
        return await self._unary("Act", request, context, self._act)

    async def Generate(self, request, context):
        return await self._unary("Generate", request, context, self._generate)

    async def GetModelInfo(self, request, context):
        return await self._unary("GetModelInfo", request, context, self._model_info, uses_model=False)

    async def StreamPoint(self, request_iterator, context) -> AsyncIterator[service_pb2.PointResponse]:
        """Newest frame wins: frames that arrive while the model is busy replace each other."""
        latest: list = []
        dropped = 0
        finished = False
        arrived = asyncio.Event()

        async def read_frames() -> None:
            nonlocal dropped, finished
            async for frame in request_iterator:
                if latest:
                    dropped += 1
                    self.counters.frames_dropped += 1
                    latest.clear()
                latest.append(frame)
                arrived.set()
            finished = True
            arrived.set()

        reader = asyncio.get_running_loop().create_task(read_frames())
        try:
            while True:
                await arrived.wait()
                arrived.clear()
                if not latest:
                    if finished:
                        break
                    continue
                frame = latest.pop()
                skipped, dropped = dropped, 0
                response = await self._unary("StreamPoint", frame, context, self._point)
                response.frames_dropped = skipped
                yield response
                if finished and not latest:
                    break
        finally:
            reader.cancel()

    # -- shared handling --

    async def _unary(self, method: str, request, context, handler, *, uses_model: bool = True):
        request_id = next(self._ids)
        started = time.monotonic()
        self.counters.requests += 1
        self.in_flight += 1
        try:
            if self.model is None:
                raise RequestFailed(
                    grpc.StatusCode.UNAVAILABLE,
                    "the model is still loading; wait for grpc.health.v1 to report SERVING",
                )
            if self.draining and uses_model:
                raise RequestFailed(
                    grpc.StatusCode.UNAVAILABLE,
                    "the server is shutting down; send the request to another one",
                )
            if isinstance(request, MalformedRequest):
                raise RequestFailed(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
            arrival = self.batcher.arrival() if uses_model else None
            try:
                response = await handler(request, context, started, arrival)
            finally:
                if arrival is not None:
                    arrival.close()
        except asyncio.CancelledError:
            self._log(request_id, method, started, "CANCELLED")
            self.counters.errors_by_code["CANCELLED"] += 1
            raise
        except Exception as exc:
            code, message = status_for(exc)
            if code == grpc.StatusCode.INTERNAL:  # the one traceback of a failure
                logger.error("request %d (%s) failed", request_id, method, exc_info=_traceback_of(exc))
            self.counters.errors_by_code[code.name] += 1
            self._log(request_id, method, started, code.name, message)
            await context.abort(code, message)
        finally:
            self.in_flight -= 1
        self._log(request_id, method, started, "OK")
        return response

    def _log(self, request_id: int, method: str, started: float, status: str, message: str = "") -> None:
        record = {
            "id": request_id,
            "method": method,
            "status": status,
            "ms": round((time.monotonic() - started) * 1000, 2),
            "queue": self.batcher.queue_depth if self.batcher else 0,
        }
        if message:
            record["message"] = message[:200]
        logger.info(json.dumps(record))

    def _deadline(self, context) -> float | None:
        remaining = context.time_remaining()
        return None if remaining is None else time.monotonic() + remaining

    def _check_text(self, text: str, what: str) -> None:
        """Characters first (cheap, bounds the rest), then the model's special tokens."""
        if len(text) > self.config.max_query_chars:
            raise RequestFailed(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the {what} has {len(text)} characters; the server's limit (max_query_chars) is "
                f"{self.config.max_query_chars}",
            )
        self.model.check_text(text, what)

    def _check_cost(self, prompt: str) -> None:
        """Tokens are what prefill pays for: 2,000 emoji pass the character limit as 8,000 tokens."""
        self.model.check_cost(prompt, self.config.max_text_tokens, "max_text_tokens")

    def _check_image_count(self, count: int) -> None:
        if count == 0:
            raise RequestFailed(
                grpc.StatusCode.INVALID_ARGUMENT, "no image in the request: send at least one"
            )
        if count > self.config.max_images_per_request:
            raise RequestFailed(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{count} images in one request; the server's limit (max_images_per_request) is "
                f"{self.config.max_images_per_request}",
            )

    async def _prepare(self, images):
        """Decode in a worker thread: many requests decode in parallel while the model runs."""
        limits = self.model.limits
        budget = ImageLimits(max_total_pixels=self.config.max_request_pixels)

        def decode():
            inputs = [wire.image_input_from_proto(image, limits) for image in images]
            values = [value for value, _ in inputs]
            pixels = check_total_pixels(values, budget, "max_request_pixels")
            prepared = self.model.prepare(values, bgr=[bgr for _, bgr in inputs])
            del inputs, values
            after_decoding(pixels)
            return prepared

        return await asyncio.to_thread(decode)

    async def _run(self, prepared, prompt: str, options: GenerationOptions, context, arrival):
        request = Request(prepared.images, prompt)
        try:
            return await self.batcher.submit(request, options, self._deadline(context), arrival)
        finally:  # the model's preprocessing of large images leaves freed heap behind too
            await asyncio.to_thread(after_decoding, sum(w * h for w, h in prepared.sizes))

    # -- Point --

    async def _point(self, request, context, started: float, arrival) -> service_pb2.PointResponse:
        self._check_text(request.query, "query")
        self._check_text(request.frame_id, "frame_id")
        self._check_image_count(len(request.images))
        if request.mode not in _POINT_MODES:
            raise RequestFailed(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"mode {request.mode} is not a PointMode; use one of {', '.join(_POINT_MODES.values())}",
            )
        if request.mode == service_pb2.POINT_MODE_COUNT:
            prompt = prompts.count_prompt(request.query, self.model.family)
        else:
            prompt = prompts.point_prompt(
                request.query, self.model.family, all_occurrences=request.mode == service_pb2.POINT_MODE_ALL
            )
        self._check_cost(prompt)
        prepared = await self._prepare(request.images)
        camera = await asyncio.to_thread(self._camera, request, prepared.sizes[0])
        served = await self._run(prepared, prompt, POINT_OPTIONS, context, arrival)
        result = read_points(prepared, served.generation, prompts.echoed_label(request.query))
        points = [self._point_proto(point, camera) for point in result.points]
        return service_pb2.PointResponse(
            points=points,
            count=len(points),
            text=result.text,
            reason=result.reason or "",
            model_id=self.model.info.model_id,
            timing=self._timing(result.timings, served, started),
            frame_id=request.frame_id,
            frame_timestamp=request.frame_timestamp,
        )

    def _camera(self, request, image_size):
        """Depth, intrinsics and extrinsic of a request, validated; ``None`` when no depth was sent."""
        if not request.HasField("depth"):
            if request.HasField("camera_to_base"):
                raise RequestFailed(
                    grpc.StatusCode.INVALID_ARGUMENT, "camera_to_base needs depth and intrinsics"
                )
            return None
        if not request.HasField("intrinsics"):
            raise RequestFailed(
                grpc.StatusCode.INVALID_ARGUMENT, "depth was sent without camera intrinsics (fx, fy, cx, cy)"
            )
        window = request.depth_window or 5
        if window % 2 == 0 or window > 101:
            raise RequestFailed(
                grpc.StatusCode.INVALID_ARGUMENT, f"depth_window must be odd and <= 101, got {window}"
            )
        intrinsics = wire.intrinsics_from_proto(request.intrinsics)
        transform = wire.transform_from_proto(request.camera_to_base)
        depth, scale = wire.depth_from_proto(request.depth, image_size, self.model.limits)
        return depth, scale, intrinsics, transform, window

    @staticmethod
    def _point_proto(point, camera) -> types_pb2.Point:
        """The point with its 3-D positions; a 3-D step that cannot give finite metres leaves a note."""
        if camera is None or point.image_index != 0:
            return wire.point_to_proto(point)
        depth, scale, intrinsics, transform, window = camera
        try:
            xyz = point_to_3d(point, depth, intrinsics, depth_scale=scale, window=window)
        except ValueError as error:  # e.g. extreme intrinsics overflow to inf: no 3-D point, say why
            return wire.point_to_proto(point, depth_note=f"no 3-D point: {error}")
        if xyz is None:
            return wire.point_to_proto(point, depth_note="no valid depth reading around this point")
        try:
            base = transform.apply(np.asarray(xyz)) if transform is not None else None
        except ValueError as error:
            return wire.point_to_proto(point, camera_xyz=xyz, depth_note=f"no base-frame point: {error}")
        return wire.point_to_proto(point, camera_xyz=xyz, base_xyz=base)

    # -- Act, Generate --

    async def _act(self, request, context, started: float, arrival) -> service_pb2.ActResponse:
        self._check_text(request.goal, "goal")
        self._check_text(request.step, "step instruction")
        self._check_history(request.history)
        if not request.HasField("screenshot"):
            raise RequestFailed(grpc.StatusCode.INVALID_ARGUMENT, "no screenshot in the request")
        prompt = prompts.act_prompt(request.goal, request.step or None)
        self._check_cost(prompt)
        prepared = await self._prepare([request.screenshot])
        options = act_options(self._bounded_tokens(request.max_new_tokens or None))
        served = await self._run(prepared, prompt, options, context, arrival)
        result = read_action(prepared, served.generation)
        response = service_pb2.ActResponse(
            text=result.text,
            reason=result.reason or "",
            model_id=self.model.info.model_id,
            timing=self._timing(result.timings, served, started),
        )
        if result.action is not None:
            response.action.CopyFrom(wire.action_to_proto(result.action))
        return response

    def _check_history(self, history) -> None:
        """History is not in Molmo's prompt, but it is client text: valid actions without special tokens."""
        for index, message in enumerate(history):
            try:
                action = wire.action_from_proto(message)
            except MolmoAgentError as error:
                raise RequestFailed(grpc.StatusCode.INVALID_ARGUMENT, f"history[{index}]: {error}") from None
            for name, text in action_texts(action):
                self._check_text(text, f"history[{index}].{name}")

    async def _generate(self, request, context, started: float, arrival) -> service_pb2.GenerateResponse:
        self._check_text(request.prompt, "prompt")
        self._check_image_count(len(request.images))
        options = self._options(request.options)
        prompt = prompts.free_prompt(request.prompt)
        self._check_cost(prompt)
        prepared = await self._prepare(request.images)
        served = await self._run(prepared, prompt, options, context, arrival)
        result = read_points(prepared, served.generation)
        # the text as decoded, not as read: an answer cut after its coordinates (stop_at_coords) is closed by
        # the caller with its own label (the query), exactly as a local model's reader does
        return service_pb2.GenerateResponse(
            text=served.generation.text,
            points=[wire.point_to_proto(p) for p in result.points],
            model_id=self.model.info.model_id,
            timing=self._timing(result.timings, served, started),
            num_generated_tokens=result.num_generated_tokens,
        )

    def _bounded_tokens(self, max_new: int | None) -> int | None:
        """A requested answer budget, refused above the server's ``max_new_tokens`` limit."""
        if max_new is not None and max_new > self.config.max_new_tokens:
            raise RequestFailed(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"max_new_tokens {max_new} is above the server's limit (max_new_tokens) of "
                f"{self.config.max_new_tokens}",
            )
        return max_new

    def _options(self, requested) -> GenerationOptions:
        max_new = self._bounded_tokens(requested.max_new_tokens or GENERATE_OPTIONS.max_new_tokens)
        try:
            return GenerationOptions(
                max_new_tokens=max_new,
                stop_at_answer=requested.stop_at_answer,
                stop_at_coords=requested.stop_at_coords,
                temperature=_float32(requested.temperature),
                top_p=_float32(requested.top_p) or 1.0,
            )
        except ValueError as exc:
            raise RequestFailed(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from exc

    # -- info --

    def _timing(self, timings, served, started: float) -> types_pb2.Timing:
        total_ms = (time.monotonic() - started) * 1000
        return wire.timing_to_proto(timings, served.queued_ms, total_ms, served.batch_size)

    async def _model_info(self, request, context, started: float, arrival) -> service_pb2.ModelInfo:
        info, config = self.model.info, self.config
        limits = service_pb2.Limits(
            max_image_pixels=self.model.limits.max_pixels,
            max_images_per_request=config.max_images_per_request,
            max_query_chars=config.max_query_chars,
            max_new_tokens=config.max_new_tokens,
            max_batch_size=config.max_batch_size,
            max_batch_wait_ms=config.max_batch_wait_ms,
            max_queue=config.max_queue,
            max_message_bytes=config.max_message_bytes,
            max_text_tokens=config.max_text_tokens,
            max_request_pixels=config.max_request_pixels,
        )
        counters = service_pb2.Counters(
            requests=self.counters.requests,
            errors_by_code=dict(self.counters.errors_by_code),
            batch_sizes=dict(self.batcher.stats.batch_sizes),
            queue_depth=self.batcher.queue_depth,
            frames_dropped=self.counters.frames_dropped,
            failed_model_calls=self.batcher.stats.failed_calls,
            split_batches=self.batcher.stats.split_batches,
        )
        return service_pb2.ModelInfo(
            model_id=info.model_id,
            family=info.family,
            device=info.device,
            dtype=info.dtype,
            num_parameters=info.num_parameters,
            limits=limits,
            counters=counters,
            server_version=SERVER_VERSION,
        )


def _float32(value: float) -> float:
    """A float32 wire value as the client wrote it (0.01 arrives as 0.0099999998), so ranges read exactly."""
    return float(f"{value:.7g}")


class _NoDeadline:
    """The context of the warm-up request: no deadline."""

    @staticmethod
    def time_remaining() -> None:
        return None


def method_handlers(servicer: MolmoAgentServicer) -> grpc.GenericRpcHandler:
    """The service's handlers with :func:`safe_deserializer`, so malformed bytes get INVALID_ARGUMENT."""
    pb = service_pb2
    handlers = {
        "Point": grpc.unary_unary_rpc_method_handler(
            servicer.Point, safe_deserializer(pb.PointRequest), pb.PointResponse.SerializeToString
        ),
        "StreamPoint": grpc.stream_stream_rpc_method_handler(
            servicer.StreamPoint, safe_deserializer(pb.PointRequest), pb.PointResponse.SerializeToString
        ),
        "Act": grpc.unary_unary_rpc_method_handler(
            servicer.Act, safe_deserializer(pb.ActRequest), pb.ActResponse.SerializeToString
        ),
        "Generate": grpc.unary_unary_rpc_method_handler(
            servicer.Generate, safe_deserializer(pb.GenerateRequest), pb.GenerateResponse.SerializeToString
        ),
        "GetModelInfo": grpc.unary_unary_rpc_method_handler(
            servicer.GetModelInfo, safe_deserializer(pb.GetModelInfoRequest), pb.ModelInfo.SerializeToString
        ),
    }
    return grpc.method_handlers_generic_handler("molmo_agent.v1.MolmoAgent", handlers)
