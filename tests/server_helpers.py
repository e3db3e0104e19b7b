"""Helpers for the gRPC tests: a scripted tiny model whose answers encode the request, and a slow variant."""

from __future__ import annotations

import datetime
import io
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from PIL import Image

import molmo_agent as ma
from molmo_agent.backends.registry import resolve
from molmo_agent.backends.scripted import ScriptedMolmo2Backend
from molmo_agent.model import MolmoModel

ITEM = re.compile(r"item (\d+)")


def answer_for(request) -> str:
    """'Point to the item 7.' -> a point at x = 70/1000, y = 500/1000: every request's answer is its own."""
    match = ITEM.search(request.prompt)
    number = int(match.group(1)) if match else 500
    return f'<points coords="1 1 {number * 10:03d} 500">item {number}</points>'


class SlowScriptedBackend(ScriptedMolmo2Backend):
    """The scripted tiny model with an extra delay per model call, and failure triggers in the prompt:
    "explode" (out of memory), "poison" (an input the processor refuses), "crash" (a bug)."""

    delay_s = 0.0
    calls: list[int]

    def generate(self, requests, options):
        self.calls.append(len(requests))
        if any("explode" in r.prompt for r in requests):
            raise RuntimeError("CUDA out of memory (simulated for this batch)")
        if any("poison" in r.prompt for r in requests):  # what a processor says about an input it refuses
            raise ValueError("Image features and image tokens do not match (simulated for this batch)")
        if any("crash" in r.prompt for r in requests):
            raise KeyError("a bug in the model call (simulated)")
        time.sleep(self.delay_s)
        return super().generate(requests, options)


def scripted_model(tiny_dir, delay_s: float = 0.0) -> MolmoModel:
    backend = SlowScriptedBackend(resolve(str(tiny_dir)))
    backend.script = answer_for
    backend.delay_s = delay_s
    backend.calls = []
    return MolmoModel(backend)


def png(size=(640, 480), colour=(30, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def run_threads(count: int, target) -> list:
    """Run ``target(i)`` in ``count`` threads at once; return results (or exceptions) in order."""
    results: list = [None] * count
    barrier = threading.Barrier(count)

    def work(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_cli_server(tiny_dir, port: int) -> subprocess.Popen:
    """``molmo-agent serve`` in its own process (a server that can really be killed), once it is SERVING."""
    command = [
        sys.executable,
        "-m",
        "molmo_agent.cli",
        "serve",
        "--port",
        str(port),
        "--model",
        str(tiny_dir),
    ]
    process = subprocess.Popen(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stderr=subprocess.DEVNULL)
    try:
        with ma.Client(f"127.0.0.1:{port}", retries=0) as client:
            client.wait_for_serving(timeout_s=300)
    except ma.MolmoAgentError:
        process.kill()
        raise
    return process


def self_signed_certificate(folder: Path, host: str = "localhost") -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path
