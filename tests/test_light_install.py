"""A plain install is the client and the formats: built as a wheel, installed without extras in a fresh venv.

The venv gets only what the wheel's base requirements pull (numpy, pillow, grpcio, grpcio-health-checking,
protobuf) from the package index; torch, transformers, OpenCV and gymnasium must be absent, and the
client must still talk to a real server (run from the full environment with the embedded default model).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image
from server_helpers import free_port, start_cli_server

import molmo_agent as ma
from molmo_agent.backends.registry import DEFAULT_MODEL_DIR

pytestmark = pytest.mark.slow
QUERY = "the yellow ball"
ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "cv2", "gymnasium", "torchvision", "tokenizers", "safetensors")

CLIENT_SCRIPT = textwrap.dedent(
    """
    import importlib.util, io, json, sys
    from PIL import Image
    import molmo_agent as ma

    heavy = {name: importlib.util.find_spec(name) is not None for name in sys.argv[2].split(",")}
    parsed = ma.parse_points('<points coords="1 1 500 250">mug</points>', image_sizes=[(200, 100)])
    image = Image.open(io.BytesIO(bytes.fromhex(sys.argv[3])))
    with ma.Client(sys.argv[1]) as client:
        points = client.point(image, "the yellow ball")
        info = client.model_info()
    try:
        ma.load_model()
        load_error = None
    except ma.MolmoAgentError as exc:
        load_error = str(exc)
    loaded = sorted(m for m in ("torch", "transformers", "cv2", "gymnasium") if m in sys.modules)
    print(json.dumps({
        "heavy_installed": heavy,
        "parsed": [[p.x, p.y] for p in parsed],
        "points": [[round(p.x_norm, 3), round(p.y_norm, 3)] for p in points.points],
        "model": info["model_id"],
        "load_error": load_error,
        "loaded": loaded,
    }))
    """
)


def _sample_png() -> bytes:
    """A TabletopPointing scene the embedded default model points at."""
    from molmo_envs.tabletop import TabletopPointingEnv

    obs, _ = TabletopPointingEnv().reset(seed=3)
    buffer = io.BytesIO()
    Image.fromarray(obs["image"]).save(buffer, format="PNG")
    return buffer.getvalue()


def _run(*command: str, cwd: Path | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_a_wheel_without_extras_is_the_client_and_the_formats(tmp_path):
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(ROOT))
    (wheel,) = (tmp_path / "dist").glob("molmo_agent-*.whl")
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", str(venv))
    python = venv / "bin" / "python"
    _run(str(python), "-m", "pip", "install", "-q", str(wheel))
    port = free_port()
    server = start_cli_server(DEFAULT_MODEL_DIR, port)
    try:
        script = tmp_path / "client.py"
        script.write_text(CLIENT_SCRIPT)
        target = f"127.0.0.1:{port}"
        output = _run(str(python), str(script), target, ",".join(HEAVY), _sample_png().hex(), cwd=tmp_path)
        report = json.loads(output)
        with ma.Client(target) as client:  # the same question from the full install
            full = [
                [round(p.x_norm, 3), round(p.y_norm, 3)] for p in client.point(_sample_png(), QUERY).points
            ]
    finally:
        server.terminate()
        server.wait(30)
    assert report["heavy_installed"] == dict.fromkeys(HEAVY, False)
    assert report["loaded"] == []
    assert report["parsed"] == [[100.0, 25.0]]
    assert report["points"] == full and full, "the light client gets the full install's answer"
    assert report["model"] == str(DEFAULT_MODEL_DIR)
    assert "molmo-agent[local]" in report["load_error"]
