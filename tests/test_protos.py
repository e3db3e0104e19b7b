"""The committed generated code matches protos/ (regenerated with the pinned grpcio-tools)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _generator():
    spec = importlib.util.spec_from_file_location("generate_protos", ROOT / "protos" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_up_to_date(tmp_path):
    generator = _generator()
    fresh = generator.generate(tmp_path)
    assert fresh, "protoc produced nothing"
    for path in fresh:
        committed = ROOT / "molmo_agent" / "v1" / path.name
        assert committed.is_file(), f"{committed} is missing: run python protos/generate.py"
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed.name} differs from what protos/ generates: run python protos/generate.py"
        )


def test_service_has_the_documented_methods():
    from molmo_agent.v1 import service_pb2

    service = service_pb2.DESCRIPTOR.services_by_name["MolmoAgent"]
    assert service.full_name == "molmo_agent.v1.MolmoAgent"
    methods = {m.name: (m.client_streaming, m.server_streaming) for m in service.methods}
    assert methods == {
        "Point": (False, False),
        "StreamPoint": (True, True),
        "Act": (False, False),
        "Generate": (False, False),
        "GetModelInfo": (False, False),
    }
