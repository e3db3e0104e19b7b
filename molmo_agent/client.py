"""A Python client for the MolmoAgent gRPC service (``molmo-agent serve``).

    >>> with Client("127.0.0.1:50051") as client:  # doctest: +SKIP
    ...     reply = client.point(frame, "the red mug", bgr=True, depth=depth_mm, intrinsics=(fx, fy, cx, cy))
    ...     reply.points[0].x, reply.camera_xyz[0]

Requests are built and responses read by :mod:`molmo_agent.wire`, the same functions the server uses, so
both sides agree on every field. Every call has a deadline; only UNAVAILABLE (no server yet, a dropped
connection, a model still loading) is retried, with exponential backoff, because every other status would
come back the same. Failures raise :class:`ClientError` carrying the gRPC status code and the server's
message. This module imports grpc; ``import molmo_agent`` loads it only when ``ma.Client`` is first used.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from . import wire
from .actions import Action
from .balancing import server_target, service_config
from .errors import MolmoAgentError
from .images import ImageLike
from .points import Point
from .v1 import service_pb2, service_pb2_grpc

logger = logging.getLogger(__name__)

MAX_RECONNECT_BACKOFF_MS = 1000

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Room for a raw 4K RGB frame (24.9 MB) plus depth; gRPC's own default is 4 MiB."""

_MODES = {
    "one": service_pb2.POINT_MODE_ONE,
    "all": service_pb2.POINT_MODE_ALL,
    "count": service_pb2.POINT_MODE_COUNT,
}


class ClientError(MolmoAgentError):
    """A call failed: ``code`` is the ``grpc.StatusCode``, ``details`` the server's (or gRPC's) message."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str, note: str = "") -> None:
        super().__init__(f"{method} failed: {code.name}: {note}{details}")
        self.method = method
        self.code = code
        self.details = details


@dataclass(frozen=True)
class TlsConfig:
    """TLS settings; paths or PEM bytes. ``tls=True`` on :class:`Client` means the system's root certificates.

    Attributes:
        root_certificates: CA certificate(s) that signed the server's certificate (``None``: system roots).
        certificate_chain: This client's certificate, for servers that require mutual TLS.
        private_key: The key of ``certificate_chain``.
        server_name: The name to check the server's certificate against, when it differs from the target's
            host (e.g. connecting to an IP address).
    """

    root_certificates: str | Path | bytes | None = None
    certificate_chain: str | Path | bytes | None = None
    private_key: str | Path | bytes | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("mutual TLS needs both certificate_chain and private_key")

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            _pem(self.root_certificates), _pem(self.private_key), _pem(self.certificate_chain)
        )


def _pem(value: str | Path | bytes | None) -> bytes | None:
    return value if value is None or isinstance(value, bytes) else Path(value).read_bytes()


@dataclass(frozen=True)
class PointReply:
    """Points for one request; ``camera_xyz``/``base_xyz``/``depth_notes`` run parallel to ``points``.

    3-D positions are metres (camera optical frame, robot base frame), ``None`` where the server had no depth
    for that point (``depth_notes`` says why) or none was sent. ``timing`` is the server's milliseconds per
    stage (``queued_ms``, ``decode_ms``, ``preprocess_ms``, ``model_ms``, ``parse_ms``, ``total_ms``) plus
    ``batch_size``. ``frames_dropped`` counts stream frames skipped (newest wins) before this one.
    """

    points: list[Point]
    camera_xyz: list[np.ndarray | None]
    base_xyz: list[np.ndarray | None]
    count: int
    text: str
    reason: str
    model_id: str
    timing: dict[str, float]
    frame_id: str = ""
    frame_timestamp: float = 0.0
    frames_dropped: int = 0
    depth_notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ActReply:
    """The action (``None`` when the answer was not one: see ``reason``) and the model's raw answer."""

    action: Action | None
    text: str
    reason: str
    model_id: str
    timing: dict[str, float]


@dataclass(frozen=True)
class GenerateReply:
    text: str
    points: list[Point]
    model_id: str
    timing: dict[str, float]
    num_generated_tokens: int = 0


def _timing(msg) -> dict[str, float]:
    return {f.name: getattr(msg, f.name) for f in msg.DESCRIPTOR.fields}


def _point_reply(msg: service_pb2.PointResponse) -> PointReply:
    xyz = [wire.point_xyz_from_proto(p) for p in msg.points]
    return PointReply(
        points=[wire.point_from_proto(p) for p in msg.points],
        camera_xyz=[camera for camera, _ in xyz],
        base_xyz=[base for _, base in xyz],
        count=msg.count,
        text=msg.text,
        reason=msg.reason,
        model_id=msg.model_id,
        timing=_timing(msg.timing),
        frame_id=msg.frame_id,
        frame_timestamp=msg.frame_timestamp,
        frames_dropped=msg.frames_dropped,
        depth_notes=[p.depth_note for p in msg.points],
    )


def _add_images(field, image: ImageLike | Sequence[ImageLike], *, bgr: bool, encoding: str) -> None:
    """One image or a list of them (a multi-image request), filled in place into a repeated field."""
    images = image if isinstance(image, list | tuple) else [image]
    for one in images:
        wire.image_to_proto(one, bgr=bgr, encoding=encoding, into=field.add())


def _as_dict(msg) -> dict[str, Any]:
    """A message as plain Python values (unlike ``MessageToDict``, 64-bit integers stay integers)."""
    out: dict[str, Any] = {}
    for descriptor in msg.DESCRIPTOR.fields:
        value = getattr(msg, descriptor.name)
        if descriptor.message_type is not None and descriptor.message_type.GetOptions().map_entry:
            out[descriptor.name] = dict(value)
        elif descriptor.message_type is not None:
            out[descriptor.name] = _as_dict(value)
        else:
            out[descriptor.name] = list(value) if descriptor.is_repeated else value
    return out


def _pool_options(max_message_bytes: int) -> list[tuple[str, Any]]:
    """Channel settings for several servers: round-robin, health-checked, one retry on another server.

    gRPC keeps a request for a retry only up to its per-call retry buffer (256 KiB by default), far less
    than a raw frame: the buffer is raised to the message limit so image requests stay retryable.
    """
    return [
        ("grpc.service_config", service_config()),
        ("grpc.per_rpc_retry_buffer_size", max_message_bytes),
    ]


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


class Client:
    """A connection to a MolmoAgent server; a context manager (or call :meth:`close`).

    Args:
        target: ``host:port`` of the server; or several servers, as ``"h1:p1,h2:p2"``, a list of
            ``host:port``, or ``"dns:///name:port"`` (every address of a DNS name): gRPC then spreads calls
            round-robin over the servers that are up and healthy (see :mod:`molmo_agent.balancing`).
        token: Bearer token (``ServerConfig.token``), sent as ``authorization: Bearer <token>``.
        tls: ``True`` for TLS with the system's roots, a :class:`TlsConfig`, or ``None``/``False`` for
            plaintext (loopback or a trusted network).
        timeout_s: Default deadline of each call, retries included.
        max_message_bytes: Send and receive limit; keep it at or below the server's.
        retries: How many times an UNAVAILABLE call is tried again.
        backoff_s: Wait before the first retry; it doubles each time.
    """

    def __init__(
        self,
        target: str | Sequence[str],
        *,
        token: str | None = None,
        tls: bool | TlsConfig | None = None,
        timeout_s: float = 30.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        retries: int = 5,
        backoff_s: float = 0.1,
    ) -> None:
        if timeout_s <= 0 or retries < 0 or backoff_s < 0 or max_message_bytes < 1:
            raise ValueError("timeout_s and max_message_bytes must be positive, retries and backoff_s >= 0")
        self.server = server_target(target)
        self.target = self.server.description
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        backoff_ms = max(int(backoff_s * 1000), 10)
        options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            # reconnect as often as we retry, so a retry can find a server that has just come up
            ("grpc.initial_reconnect_backoff_ms", backoff_ms),
            ("grpc.min_reconnect_backoff_ms", backoff_ms),
            # and never back off for long: after a server restart the same client must reconnect within
            # its retry window (gRPC's default grows to 120 s after repeated failures)
            ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS),
        ]
        if self.server.balanced:
            options += _pool_options(max_message_bytes)
        self._metadata: tuple[tuple[str, str], ...] = ()
        if tls:
            tls = TlsConfig() if tls is True else tls
            credentials = tls.credentials()
            if token:
                call = grpc.access_token_call_credentials(token)  # authorization: Bearer <token>
                credentials = grpc.composite_channel_credentials(credentials, call)
            # a resolved list of servers has no host name of its own: check the first one's unless told
            server_name = tls.server_name or (self.server.server_name if self.server.balanced else None)
            if server_name:
                options.append(("grpc.ssl_target_name_override", server_name))
            self._channel = grpc.secure_channel(self.server.target, credentials, options=options)
        else:
            # gRPC refuses call credentials on plaintext channels: send the same header as metadata
            self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
            self._channel = grpc.insecure_channel(self.server.target, options=options)
        self._stub = service_pb2_grpc.MolmoAgentStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    # -- lifecycle --

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.target!r})"

    # -- RPCs --

    def point(
        self,
        image: ImageLike | Sequence[ImageLike],
        query: str,
        *,
        mode: str = "one",
        depth: np.ndarray | None = None,
        intrinsics: Any = None,
        camera_to_base: Any = None,
        depth_window: int = 0,
        bgr: bool = False,
        encoding: str = "raw",
        timeout_s: float | None = None,
    ) -> PointReply:
        """Points for ``query``; with ``depth`` (uint16 mm or float32 m, aligned to the first image) and
        ``intrinsics`` also camera-frame 3-D points, and base-frame ones with a 4x4 ``camera_to_base``.

        ``bgr=True`` sends an OpenCV frame as raw BGR bytes with no conversion; ``encoding="jpeg"``/``"png"``
        compresses on the client instead (slow links). Intrinsics may be ``(fx, fy, cx, cy)``, a dict, ``K``
        or :class:`~molmo_agent.geometry.CameraIntrinsics`.

        Raises:
            ClientError: The server refused or failed the request, or could not be reached.
            ImageInputError, RequestError: An image, depth or calibration was invalid before sending.
        """
        request = self._point_request(
            image, query, mode, intrinsics, camera_to_base, depth_window, bgr, encoding
        )
        if depth is not None:
            request.depth.CopyFrom(wire.depth_to_proto(depth))
        return _point_reply(self._unary("Point", request, timeout_s))

    def count(self, image: ImageLike | Sequence[ImageLike], query: str, **kwargs: Any) -> int:
        """How many ``query`` objects the model finds (Molmo's counting prompt)."""
        return self.point(image, query, mode="count", **kwargs).count

    def act(
        self,
        screenshot: ImageLike,
        goal: str,
        *,
        step: str | None = None,
        history: Sequence[Action] = (),
        bgr: bool = False,
        encoding: str = "raw",
        timeout_s: float | None = None,
        max_new_tokens: int = 0,
    ) -> ActReply:
        """The next GUI action towards ``goal`` (coordinates in screenshot pixels); ``max_new_tokens`` 0
        means the library's default answer budget."""
        request = service_pb2.ActRequest(
            goal=goal,
            step=step or "",
            history=[wire.action_to_proto(action) for action in history],
            max_new_tokens=max_new_tokens,
        )
        wire.image_to_proto(screenshot, bgr=bgr, encoding=encoding, into=request.screenshot)
        msg = self._unary("Act", request, timeout_s)
        action = wire.action_from_proto(msg.action) if msg.HasField("action") else None
        return ActReply(action, msg.text, msg.reason, msg.model_id, _timing(msg.timing))

    def generate(
        self,
        image: ImageLike | Sequence[ImageLike],
        prompt: str,
        *,
        max_new_tokens: int = 0,
        temperature: float = 0.0,
        top_p: float = 0.0,
        stop_at_answer: bool = False,
        stop_at_coords: bool = False,
        bgr: bool = False,
        encoding: str = "raw",
        timeout_s: float | None = None,
    ) -> GenerateReply:
        """A free-form answer; 0 means the server's default for each option (greedy, top_p 1).

        ``stop_at_answer`` ends the answer at its pointing tag's end; ``stop_at_coords`` ends it right after
        the tag's coordinates, as the library's point calls do: ``text`` is then left cut, for the caller to
        close with its query as the label (``parsing.complete_cut_answer``); ``points`` are read already.
        """
        request = service_pb2.GenerateRequest(
            prompt=prompt,
            options=service_pb2.GenerationOptions(
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                stop_at_answer=stop_at_answer,
                stop_at_coords=stop_at_coords,
            ),
        )
        _add_images(request.images, image, bgr=bgr, encoding=encoding)
        msg = self._unary("Generate", request, timeout_s)
        points = [wire.point_from_proto(p) for p in msg.points]
        return GenerateReply(msg.text, points, msg.model_id, _timing(msg.timing), msg.num_generated_tokens)

    def model_info(self, *, timeout_s: float | None = None) -> dict[str, Any]:
        """The served model, the server's limits and its counters (fields as in ``ModelInfo``)."""
        return _as_dict(self._unary("GetModelInfo", service_pb2.GetModelInfoRequest(), timeout_s))

    def health(self, service: str = "", *, timeout_s: float | None = None) -> str:
        """``"SERVING"`` once the model is loaded, ``"NOT_SERVING"`` while loading or shutting down.

        Uses the standard ``grpc.health.v1`` service, which needs no token.
        """
        request = health_pb2.HealthCheckRequest(service=service)
        reply = self._unary("Health", request, timeout_s, rpc=self._health.Check)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def wait_for_serving(self, timeout_s: float = 120.0, poll_s: float = 0.2) -> None:
        """Block until the server's health says SERVING (it may be starting or loading its model).

        Raises:
            ClientError: with code DEADLINE_EXCEEDED when it is not serving within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                last = self.health(timeout_s=min(2.0, max(deadline - time.monotonic(), 0.01)))
            except ClientError as exc:
                last = f"{exc.code.name}: {exc.details}"
            if last == "SERVING":
                return
            _sleep(poll_s)
        raise ClientError(
            "Health", grpc.StatusCode.DEADLINE_EXCEEDED, f"not serving after {timeout_s} s ({last})"
        )

    def stream_point(
        self,
        frames: Iterable[Any],
        query: str,
        *,
        mode: str = "one",
        intrinsics: Any = None,
        camera_to_base: Any = None,
        depth_window: int = 0,
        bgr: bool = False,
        encoding: str = "raw",
        timeout_s: float | None = None,
    ) -> Iterator[PointReply]:
        """Point at ``query`` in a live stream of frames; the server answers the newest frame it has.

        Each frame is an image, ``(frame_id, image)``, or a dict with ``image`` and optionally ``frame_id``,
        ``timestamp`` (capture time, default now) and ``depth``. Frames are read from ``frames`` only as
        gRPC sends them, so a camera generator is never read ahead. Frames that arrive while the model is
        busy are dropped (counted in ``frames_dropped``); the last frame is always answered.

        A stream is open-ended, so ``timeout_s`` is ``None`` (no deadline) unless given; it bounds the
        whole stream. Streams are never retried.

        Raises:
            ClientError: The stream failed (the code says why).
        """
        base = self._point_request(None, query, mode, intrinsics, camera_to_base, depth_window, bgr, encoding)
        failure: list[BaseException] = []

        def requests() -> Iterator[service_pb2.PointRequest]:
            try:
                for index, frame in enumerate(frames):
                    yield self._frame_request(base, index, frame, bgr=bgr, encoding=encoding)
            except Exception as error:  # gRPC would only cancel the call: keep the cause for the caller
                failure.append(error)
                raise

        call = self._stub.StreamPoint(requests(), timeout=timeout_s, metadata=self._metadata)
        try:
            for msg in call:
                yield _point_reply(msg)
        except grpc.RpcError as error:
            if failure:
                raise failure[0] from None
            raise self._error("StreamPoint", error) from None
        finally:
            call.cancel()  # the caller stopped early, or the stream is over (a no-op then)

    # -- plumbing --

    def _point_request(
        self, image, query, mode, intrinsics, camera_to_base, depth_window, bgr, encoding
    ) -> service_pb2.PointRequest:
        if mode not in _MODES:
            raise ValueError(f"unknown point mode {mode!r}; expected one of: {', '.join(_MODES)}")
        request = service_pb2.PointRequest(query=query, mode=_MODES[mode], depth_window=depth_window)
        if image is not None:
            _add_images(request.images, image, bgr=bgr, encoding=encoding)
        if intrinsics is not None:
            request.intrinsics.CopyFrom(wire.intrinsics_to_proto(intrinsics))
        if camera_to_base is not None:
            request.camera_to_base.CopyFrom(wire.transform_to_proto(camera_to_base))
        return request

    @staticmethod
    def _frame_request(base, index: int, frame, *, bgr: bool, encoding: str) -> service_pb2.PointRequest:
        if isinstance(frame, dict):
            image, frame_id = frame["image"], frame.get("frame_id", index)
            timestamp, depth = frame.get("timestamp"), frame.get("depth")
        elif isinstance(frame, tuple) and len(frame) == 2:
            (frame_id, image), timestamp, depth = frame, None, None
        else:
            image, frame_id, timestamp, depth = frame, index, None, None
        request = service_pb2.PointRequest()
        request.CopyFrom(base)
        wire.image_to_proto(image, bgr=bgr, encoding=encoding, into=request.images.add())
        request.frame_id = str(frame_id)
        request.frame_timestamp = time.time() if timestamp is None else float(timestamp)
        if depth is not None:
            request.depth.CopyFrom(wire.depth_to_proto(depth))
        return request

    def _unary(self, method: str, request, timeout_s: float | None, rpc=None):
        """One call with a deadline covering all attempts; only UNAVAILABLE is tried again."""
        rpc = rpc or getattr(self._stub, method)
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        attempt = 0
        while True:
            attempt += 1
            try:
                return rpc(request, timeout=max(deadline - time.monotonic(), 0.0), metadata=self._metadata)
            except grpc.RpcError as error:
                delay = self.backoff_s * 2 ** (attempt - 1)
                retry = error.code() == grpc.StatusCode.UNAVAILABLE and attempt <= self.retries
                if not retry or time.monotonic() + delay >= deadline:
                    raise self._error(method, error, attempt) from None
                logger.debug("%s: %s unavailable, retry %d in %.2f s", method, self.target, attempt, delay)
                _sleep(delay)

    def _error(self, method: str, error: grpc.RpcError, attempts: int = 1) -> ClientError:
        code, details = error.code(), error.details() or ""
        note = ""
        if code == grpc.StatusCode.UNAVAILABLE:
            tries = f" ({attempts} attempts)" if attempts > 1 else ""
            where = "servers" if self.server.balanced else "server"
            note = f"{where} at {self.target}{tries}: "
        return ClientError(method, code, details, note)


__all__ = ["ActReply", "Client", "ClientError", "GenerateReply", "PointReply", "TlsConfig"]
