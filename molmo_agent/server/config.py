"""Server settings, validated up front (no I/O in validation) so a bad flag fails before the model loads."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from ..images import DEFAULT_MAX_PIXELS, DEFAULT_MAX_TOTAL_PIXELS
from ..prompts import MAX_QUERY_CHARS, MAX_TEXT_TOKENS

DEFAULT_PORT = 50051
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""A raw 4K RGB frame is 3840 x 2160 x 3 = 24.9 MB, far above gRPC's 4 MiB default; 64 MiB leaves room
for depth and several images."""
TOKEN_ENV = "MOLMO_AGENT_TOKEN"


class ConfigError(ValueError):
    """A server setting is invalid or unsafe; the message says which and what to do."""


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    model: str | None = None
    device: str | None = None
    dtype: str | None = None
    cpu_threads: int | None = None
    quantize: str | None = None
    """``"int8"`` / ``"int4"``: weight-only quantization of the served model (``load_model(quantize=)``)."""
    max_batch_size: int = 8
    max_batch_wait_ms: float = 5.0
    max_queue: int = 64
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    max_request_pixels: int = DEFAULT_MAX_TOTAL_PIXELS
    max_images_per_request: int = 8
    max_query_chars: int = MAX_QUERY_CHARS
    max_text_tokens: int = MAX_TEXT_TOKENS
    max_new_tokens: int = 512
    token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    insecure: bool = False
    grace_s: float = 10.0
    warmup: bool = True

    def __post_init__(self) -> None:
        for name in ("tls_cert", "tls_key", "tls_client_ca"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        positive = (
            "max_batch_size",
            "max_queue",
            "max_message_bytes",
            "max_image_pixels",
            "max_request_pixels",
            "max_images_per_request",
            "max_query_chars",
            "max_text_tokens",
            "max_new_tokens",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ConfigError(f"cpu_threads must be >= 1, got {self.cpu_threads}")
        if self.max_batch_wait_ms < 0 or self.grace_s < 0:
            raise ConfigError("max_batch_wait_ms and grace_s must be >= 0")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be in 0..65535 (0 = any free port), got {self.port}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("TLS needs both --tls-cert and --tls-key")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError("mutual TLS (--tls-client-ca) needs --tls-cert and --tls-key too")
        if self.token is not None and not self.token.strip():
            raise ConfigError("the auth token is empty")
        if not self.is_loopback and self.token is None and not self.insecure:
            raise ConfigError(
                f"refusing to serve on {self.host} (reachable from other machines) without authentication: "
                f"set a token (--token-file or ${TOKEN_ENV}), ideally with TLS, or pass --insecure to "
                "accept the risk"
            )

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"


def read_token(token_file: str | None, env_var: str = TOKEN_ENV) -> str | None:
    """The bearer token from a file (first line) or an environment variable; the file wins."""
    if token_file:
        try:
            return Path(token_file).read_text().strip() or None
        except OSError as exc:
            raise ConfigError(f"cannot read token file {token_file}: {exc}") from exc
    value = os.environ.get(env_var, "").strip()
    return value or None
