"""openai:// (a Molmo behind an inference engine's OpenAI-compatible API).

The equality tests start a real engine, `transformers serve`, with the embedded default model and compare
everything a user sees with the model in process. Error paths an engine cannot be made to take on demand
use a small fault-injecting HTTP server instead.
"""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from engine_helpers import FaultServer, Reply, answer, start_transformers_serve, transformers_cli
from PIL import Image

import molmo_agent as ma
from molmo_agent.backends.base import GenerationOptions
from molmo_agent.backends.engine_answers import cut_like_local, stop_sequences
from molmo_agent.backends.image_urls import choose_format, data_url
from molmo_agent.backends.openai_compat import family_of_name, parse_url
from molmo_agent.backends.registry import DEFAULT_MODEL_DIR, resolve
from molmo_agent.errors import (
    EngineAuthError,
    EngineError,
    EngineRequestError,
    EngineUnavailableError,
    ModelLoadError,
    ModelNotFoundError,
)
from molmo_agent.model import POINT_OPTIONS
from molmo_agent.parsing import complete_cut_answer

pytest.importorskip("httpx")
HAS_SERVE = importlib.util.find_spec("fastapi") is not None and transformers_cli().exists()
needs_serve = pytest.mark.skipif(not HAS_SERVE, reason="needs transformers[serving] (the dev extra)")
SCREEN = Image.new("RGB", (64, 48), (200, 200, 200))


# -- URLs, names, images, answers (no server) ------------------------------------------------------------


def test_url_parses_into_a_target_with_defaults_and_options():
    target = parse_url("openai://127.0.0.1:8000/v1?model=allenai/Molmo2-8B")
    assert target.base_url == "http://127.0.0.1:8000/v1"
    assert (target.model, target.family, target.concurrency, target.stop) == (
        "allenai/Molmo2-8B",
        None,
        8,
        "auto",
    )
    target = parse_url(
        "openais://gpu:443/api/v1/?concurrency=2&timeout=5&family=molmo1&ca=/ca.pem&images=png"
    )
    assert target.base_url == "https://gpu:443/api/v1"
    assert (target.concurrency, target.timeout_s, target.family, target.ca_file) == (
        2,
        5.0,
        "molmo1",
        "/ca.pem",
    )
    assert resolve("openai://h:1/v1?model=x").family == "openai"


@pytest.mark.parametrize(
    "url",
    ["openai://nohost/v1", "http://h:1/v1", "openai://h:1/v1?modle=x", "openai://h:1/v1?family=molmo3"],
)
def test_bad_urls_are_clear_errors(url):
    with pytest.raises(ModelNotFoundError, match=r"openai|option|family"):
        parse_url(url)


def test_family_comes_from_known_ids_their_short_names_and_checkpoint_folders():
    assert family_of_name("allenai/Molmo-7B-D-0924") == "molmo1"
    assert family_of_name("Molmo2-8B") == "molmo2"
    assert family_of_name(str(DEFAULT_MODEL_DIR)) == "molmo2"
    assert family_of_name("my-finetune") is None


def test_small_images_and_screenshots_go_as_png_large_photos_as_jpeg():
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (1100, 1400, 3), dtype=np.uint8))
    screenshot = Image.new("RGB", (1920, 1080), (240, 240, 240))
    assert choose_format(SCREEN) == choose_format(screenshot) == "PNG"
    assert choose_format(photo) == "JPEG" and choose_format(photo, "png") == "PNG"
    url = data_url(SCREEN)
    assert url.startswith("data:image/png;base64,")


@pytest.mark.parametrize(
    ("text", "extra"),
    [
        ('<points coords="1 1 196 285">the yellow star icon</points>', {}),  # no stop support: whole answer
        ('<points coords="1 1 196 285">', {"finish_reason": "stop"}),  # stop kept (transformers)
        ('<points coords="1 1 196 285', {"finish_reason": "stop"}),  # stop left out (OpenAI convention)
        ('<points coords="1 1 196 285', {"finish_reason": "stop", "stop_reason": '">'}),  # vLLM says which
    ],
)
def test_every_engine_stop_convention_closes_like_the_local_answer(text, extra):
    stops = stop_sequences("molmo2", POINT_OPTIONS)
    reports = "stop_reason" in extra
    cut = cut_like_local(text, POINT_OPTIONS, stops=stops, reports_stop_reason=reports, **extra)
    closed = complete_cut_answer(cut, "yellow star icon")
    assert closed == '<points coords="1 1 196 285">yellow star icon</points>'


def test_molmo1_cut_answers_and_unstopped_options():
    stops = stop_sequences("molmo1", POINT_OPTIONS)
    cut = cut_like_local(
        '<points x1="1.0" y1="2.0" x2="3.0" y2="4.0"', POINT_OPTIONS, stops=stops, finish_reason="stop"
    )
    assert complete_cut_answer(cut, "mugs") == (
        '<points x1="1.0" y1="2.0" x2="3.0" y2="4.0" alt="mugs">mugs</points>'
    )
    # an end-of-sequence (vLLM: stop_reason None) is not mistaken for a stripped stop sequence
    assert cut_like_local(
        "<points", POINT_OPTIONS, stops=stops, finish_reason="stop", reports_stop_reason=True
    ) == ("<points")
    plain = GenerationOptions(max_new_tokens=5)
    assert stop_sequences("molmo2", plain) == ()
    assert cut_like_local('<points coords="1 1 1 1">a</points> more', plain) == (
        '<points coords="1 1 1 1">a</points> more'
    )


def test_import_needs_no_httpx_and_a_missing_extra_names_it():
    code = (
        "import sys; sys.modules['httpx'] = None; import molmo_agent as ma\n"
        "try:\n    ma.load_model('openai://127.0.0.1:9/v1?model=x&family=molmo2')\n"
        "except ma.MolmoAgentError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "molmo-agent[engines]" in out.stdout, out.stderr


@needs_serve
def test_the_engine_renders_our_prompt_to_the_same_tokens_and_pixels_as_the_local_backend():
    """transformers serve's own message conversion and chat template, run here, against our preprocess."""
    from transformers.cli.serving.model_manager import Modality
    from transformers.cli.serving.utils import BaseHandler

    from molmo_agent import prompts
    from molmo_agent.backends.base import Request

    backend = ma.load_model().backend
    screen = _gui_screens(1)[0]
    request = Request((screen[0],), prompts.point_prompt(screen[1], "molmo2"))
    local = backend.preprocess([request])
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": data_url(screen[0])}},
                {"type": "text", "text": request.prompt},
            ],
        }
    ]
    engine_messages = BaseHandler.get_processor_inputs_from_messages(messages, Modality.VLM)
    engine = backend.processor.apply_chat_template(
        engine_messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    assert sorted(engine.keys()) == sorted(local.keys())
    for key, value in local.items():
        assert np.array_equal(value.cpu().numpy(), engine[key].cpu().numpy()), key


# -- error paths (fault-injecting server) ------------------------------------------------------------


@pytest.fixture
def faults():
    with FaultServer() as server:
        yield server


def test_a_served_answer_is_read_and_mapped_like_a_local_one(faults, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    model = ma.load_model(faults.url())
    points = model.point(Image.new("RGB", (640, 480)), "the item")
    assert [(p.x, p.y) for p in points] == [(320.0, 240.0)]
    body = faults.bodies[-1]
    assert body["temperature"] == 0 and body["stop"] == ['">'] and body["model"] == "allenai/Molmo2-8B"
    image, text = body["messages"][0]["content"]
    assert (
        image["image_url"]["url"].startswith("data:image/png;base64,")
        and text["text"] == "Point to the item."
    )
    assert faults.headers[-1]["Authorization"] == "Bearer sk-test"


def test_unauthorised_is_an_auth_error_saying_which_variable(faults):
    faults.script = lambda body: Reply(401, {"error": {"message": "Invalid API key"}})
    model = ma.load_model(faults.url(api_key_env="MY_KEY"))
    with pytest.raises(EngineAuthError, match="OPENAI_API_KEY"):
        model.point(SCREEN, "x")


def test_429_then_200_is_retried_and_503_to_the_end_is_unavailable(faults):
    replies = iter(
        [Reply(429, {"error": "slow down"}, {"Retry-After": "0"}), answer('<points coords="1 1 1 1">')]
    )
    faults.script = lambda body: next(replies)
    model = ma.load_model(faults.url())
    assert len(model.point(SCREEN, "x")) == 1 and len(faults.bodies) == 2
    faults.script = lambda body: Reply(503, {"error": "overloaded"}, {"Retry-After": "0"})
    faults.bodies.clear()
    with pytest.raises(EngineUnavailableError, match=r"503.*3 attempts"):
        model.point(SCREEN, "x")
    assert len(faults.bodies) == 3


def test_other_failures_are_not_retried(faults):
    faults.script = lambda body: Reply(400, {"detail": "bad"})
    with pytest.raises(EngineRequestError, match="bad"):
        ma.load_model(faults.url()).point(SCREEN, "x")
    assert len(faults.bodies) == 1


def test_a_model_the_engine_does_not_serve_lists_what_it_serves(faults):
    with pytest.raises(ModelNotFoundError, match="serves: allenai/Molmo2-8B"):
        ma.load_model(faults.url(model="allenai/Molmo2-4B"))
    faults.script = lambda body: Reply(404, {"error": {"message": "The model `x` does not exist."}})
    with pytest.raises(EngineRequestError, match=r"does not serve.*serves: allenai/Molmo2-8B"):
        ma.load_model(faults.url()).point(SCREEN, "x")


def test_without_model_the_only_served_one_is_used_and_unknown_names_need_family():
    with FaultServer({"my-finetune": ""}) as server:
        with pytest.raises(ModelLoadError, match="family=molmo2"):
            ma.load_model(server.url(model=None))
        assert ma.load_model(server.url(model=None, family="molmo2")).family == "molmo2"
    with FaultServer({"molmo": "allenai/Molmo-7B-D-0924", "other": ""}) as server:
        assert ma.load_model(server.url(model="molmo")).family == "molmo1"  # from /v1/models' root
        with pytest.raises(ModelNotFoundError, match="molmo, other"):
            ma.load_model(server.url(model=None))


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("This model's maximum context length is 4096 tokens. However, you requested 5000", "max-model-len"),
        ("The prompt has 5000 tokens, but the model takes at most 4096", "max-model-len"),
        ("At most 1 image(s) may be provided in one request", "limit-mm-per-prompt"),
    ],
)
def test_context_length_and_image_rejections_say_what_to_change(faults, message, expected):
    faults.script = lambda body: Reply(400, {"object": "error", "message": message, "code": 400})
    with pytest.raises(EngineRequestError, match=expected):
        ma.load_model(faults.url()).point(SCREEN, "x")


def test_an_unreachable_port_and_a_slow_engine_are_clear_errors(faults):
    with pytest.raises(EngineUnavailableError, match="no OpenAI-compatible server answers"):
        ma.load_model("openai://127.0.0.1:9/v1?model=x&family=molmo2")
    faults.script = lambda body: Reply(delay_s=3)
    model = ma.load_model(faults.url(timeout="0.5"))
    with pytest.raises(EngineUnavailableError, match=r"within 0\.5 s"):
        model.point(SCREEN, "x")


def test_a_failed_engine_call_is_recorded_on_the_eval_step_and_the_run_goes_on(faults):
    from molmo_agent.evaluation.suites import score_suite

    faults.script = lambda body: Reply(503, {"error": "down"}, {"Retry-After": "0"})
    _, records = score_suite(ma.load_model(faults.url(retries=1)), "synthetic_gui", [0, 1])
    assert len(records) == 2
    assert all("EngineUnavailableError" in record["error"] for record in records)
    assert isinstance(EngineUnavailableError("x"), EngineError)


# -- a real engine: transformers serve with the embedded default model ---------------------------------------


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    if not HAS_SERVE:
        pytest.skip("needs transformers[serving] (the dev extra)")
    started = start_transformers_serve(DEFAULT_MODEL_DIR, tmp_path_factory.mktemp("engine") / "serve.log")
    yield started
    started.stop()


@pytest.fixture(scope="module")
def local_model():
    return ma.load_model()


@pytest.fixture(scope="module")
def engine_model(engine):
    return ma.load_model(engine.url(concurrency=4))


def _gui_screens(count: int) -> list[tuple[Image.Image, str]]:
    import gymnasium as gym

    from molmo_agent.evaluation.suites import suite

    gui = suite("synthetic_gui")
    env = gym.make(f"molmo_envs:{gui.env_id}", **gui.env_kwargs)
    screens = []
    for seed in range(count):
        obs, _ = env.reset(seed=seed)
        screens.append((Image.fromarray(obs["screenshot"]), str(obs["instruction"])))
    return screens


def _records(model, name: str, seeds) -> tuple[dict, list[dict]]:
    from molmo_agent.evaluation.suites import score_suite

    return score_suite(model, name, seeds)


def _comparable(record: dict) -> dict:
    return {k: v for k, v in record.items() if not k.endswith("_ms") and k not in ("timings",)}


@pytest.mark.slow
def test_fifty_held_out_screens_give_the_same_answers_points_and_success(local_model, engine_model):
    seeds = range(50)
    local_summary, local_records = _records(local_model, "synthetic_gui", seeds)
    engine_summary, engine_records = _records(engine_model, "synthetic_gui", seeds)
    assert [_comparable(r) for r in engine_records] == [_comparable(r) for r in local_records]
    assert all(r["error"] is None for r in engine_records)
    local_rate, engine_rate = local_summary["step_accuracy"], engine_summary["step_accuracy"]
    assert abs(engine_rate - local_rate) <= 0.01  # within one point (here: equal, as every step is)


@pytest.mark.slow
def test_tabletop_scenes_give_the_same_answers_and_points(local_model, engine_model):
    _, local_records = _records(local_model, "tabletop", range(10))
    _, engine_records = _records(engine_model, "tabletop", range(10))
    assert [_comparable(r) for r in engine_records] == [_comparable(r) for r in local_records]


@pytest.mark.slow
def test_a_batch_of_point_queries_is_answered_as_in_process(local_model, engine_model):
    screens = _gui_screens(8)
    images, queries = [s[0] for s in screens], [s[1] for s in screens]
    local = local_model.point_detailed(images, queries)
    served = engine_model.point_detailed(images, queries)
    for a, b in zip(local, served, strict=True):
        assert (b.text, b.reason, b.image_sizes) == (a.text, a.reason, a.image_sizes)
        assert [p.to_dict() for p in b.points] == [p.to_dict() for p in a.points]
    assert (
        local_model.act_detailed(images[0], "Open settings").text
        == engine_model.act_detailed(images[0], "Open settings").text
    )


@pytest.mark.slow
def test_the_engine_sees_as_many_prompt_tokens_as_the_local_model(local_model, engine_model):
    from molmo_agent import prompts
    from molmo_agent.backends.base import Request

    image, query = _gui_screens(1)[0]
    request = Request((image,), prompts.point_prompt(query, "molmo2"))
    local_length = local_model.backend.preprocess([request])["input_ids"].shape[1]
    body = {
        "model": engine_model.backend.model_name,
        "max_tokens": 1,
        "temperature": 0,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": data_url(image)}},
                    {"type": "text", "text": request.prompt},
                ],
            }
        ],
    }
    assert engine_model.backend.http.post("chat/completions", body)["usage"]["prompt_tokens"] == local_length


@pytest.mark.slow
def test_cli_point_json_through_the_engine_equals_the_local_one(engine, tmp_path, capsys):
    from molmo_agent.cli import main

    image, query = _gui_screens(3)[2]
    path = tmp_path / "screen.png"
    image.save(path)
    reports = []
    for extra in ([], ["--model", engine.url()]):
        assert main(["point", str(path), query, "--json", *extra]) == 0
        report = json.loads(capsys.readouterr().out)
        report.pop("timings_ms")
        reports.append(report)
    assert reports[1] == reports[0]
    assert reports[0]["points"] and reports[0]["model"] == "molmo-agent/default"


@pytest.mark.slow
def test_a_grpc_server_over_the_engine_answers_point_like_one_with_the_model_in_process(local_model, engine):
    from molmo_agent.server.app import BackgroundServer
    from molmo_agent.server.config import ServerConfig

    screens = _gui_screens(5)
    replies = []
    with (
        BackgroundServer(ServerConfig(port=0, warmup=False), local_model) as in_process,
        BackgroundServer(ServerConfig(port=0, warmup=False, model=engine.url())) as over_engine,
    ):
        for server in (in_process, over_engine):
            with ma.Client(server.target) as client:
                replies.append([client.point(_png(image), query) for image, query in screens])
    for a, b in zip(*replies, strict=True):
        assert (b.text, b.reason, b.count, b.model_id) == (a.text, a.reason, a.count, a.model_id)
        assert [p.to_dict() for p in b.points] == [p.to_dict() for p in a.points]


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
