"""Bearer-token authentication as a server interceptor."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

import grpc

OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/",)
"""Health checks stay open so load balancers and orchestrators can probe without the secret. Reflection is
behind the token: it describes the whole API surface, which a server that wants a token keeps private
(``grpcurl -H 'authorization: Bearer ...'`` passes the token)."""


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls whose ``authorization`` metadata is not ``Bearer <token>`` with UNAUTHENTICATED.

    The scheme is case-insensitive (RFC 7235: ``bearer x`` is ``Bearer x``); the token comparison is
    constant-time. Reject handlers are built once per RPC shape.
    """

    def __init__(self, token: str) -> None:
        self._expected = token.encode()

        async def reject(request, context: grpc.aio.ServicerContext):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

        async def reject_stream(request_iterator, context: grpc.aio.ServicerContext):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
            yield  # pragma: no cover - makes this an async generator for streaming RPCs

        self._reject_unary = grpc.unary_unary_rpc_method_handler(reject)
        self._reject_stream = grpc.stream_stream_rpc_method_handler(reject_stream)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        if handler_call_details.method.startswith(OPEN_METHOD_PREFIXES) or self._authorized(
            handler_call_details.invocation_metadata
        ):
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        if handler is not None and (handler.request_streaming or handler.response_streaming):
            return self._reject_stream
        return self._reject_unary

    def _authorized(self, metadata) -> bool:
        for key, value in metadata or ():
            if key == "authorization":
                return hmac.compare_digest(presented_token(value), self._expected)
        return False


def presented_token(value: str | bytes) -> bytes:
    """The token of an ``authorization`` value: after a case-insensitive ``Bearer`` and spaces; else b""."""
    raw = value.encode() if isinstance(value, str) else bytes(value)
    scheme, _, token = raw.strip().partition(b" ")
    return token.strip() if scheme.lower() == b"bearer" else b""
