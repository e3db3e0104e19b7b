"""Regenerate the Python code for the protos into the package (``molmo_agent/v1/*_pb2*.py``).

    python protos/generate.py            # writes into the repository
    python protos/generate.py OUT_DIR    # writes into OUT_DIR/molmo_agent/v1 (used by the drift test)

Needs grpcio-tools (the ``dev`` extra pins the version the committed code was made with).
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PROTO_ROOT.parent
PROTO_FILES = ("molmo_agent/v1/types.proto", "molmo_agent/v1/service.proto")
GENERATED = ("types_pb2.py", "types_pb2.pyi", "service_pb2.py", "service_pb2.pyi", "service_pb2_grpc.py")


def generate(out_dir: Path = REPO_ROOT) -> list[Path]:
    """Run protoc (from grpcio-tools) on every proto; return the paths of the generated files we keep."""
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{PROTO_ROOT}", f"--python_out={out_dir}", f"--pyi_out={out_dir}"]
    if protoc.main([*args, *PROTO_FILES]) != 0:
        raise RuntimeError("protoc failed on the message files")
    grpc_args = ["protoc", f"-I{PROTO_ROOT}", f"--grpc_python_out={out_dir}", "molmo_agent/v1/service.proto"]
    if protoc.main(grpc_args) != 0:
        raise RuntimeError("protoc failed on the service file")
    return [out_dir / "molmo_agent" / "v1" / name for name in GENERATED]


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT):
        print(path)
