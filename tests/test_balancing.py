"""Several molmo-agent servers behind one client: gRPC's round-robin over loopback servers (tiny model)."""

from __future__ import annotations

import json
import signal
import time

import pytest
from grpc_health.v1 import health_pb2
from server_helpers import free_port, png, scripted_model, self_signed_certificate, start_cli_server

import molmo_agent as ma
from molmo_agent.balancing import TargetError, server_target, service_config, split_addresses
from molmo_agent.client import Client, TlsConfig
from molmo_agent.evaluation import EvalConfig, run_eval
from molmo_agent.server.app import SERVICE_NAME, BackgroundServer
from molmo_agent.server.config import ServerConfig

ANDROID = "molmo_agent/AndroidControl-v0"
CALLS = 8
QUERIES = [f"the item {10 * i + 5}" for i in range(CALLS)]


def served(server: BackgroundServer) -> int:
    """Requests this server has handled (the counter its GetModelInfo reports)."""
    return server.running.servicer.counters.requests


def served_over_grpc(port: int) -> int:
    """The same counter read through GetModelInfo (which counts itself), for servers in other processes."""
    with Client(f"127.0.0.1:{port}", retries=0, timeout_s=10) as client:
        return int(client.model_info()["counters"]["requests"])


def until(condition, timeout_s: float = 30.0, message: str = "") -> None:
    """Poll ``condition`` until it holds; the deadline only bounds the wait (nothing is timed)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {message}")
        time.sleep(0.05)


# -- address forms -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("addresses", "target", "balanced", "server_name"),
    [
        ("127.0.0.1:5001", "127.0.0.1:5001", False, None),
        ("gpu-1:50051", "gpu-1:50051", False, None),
        ("127.0.0.1:5001, 127.0.0.1:5002", "ipv4:127.0.0.1:5001,127.0.0.1:5002", True, "127.0.0.1"),
        (["localhost:5001", "localhost:5002"], "ipv4:127.0.0.1:5001,127.0.0.1:5002", True, "localhost"),
        ("[::1]:5001,[::1]:5002", "ipv6:[::1]:5001,[::1]:5002", True, "::1"),
        ("dns:///gpu-pool:50051", "dns:///gpu-pool:50051", True, "gpu-pool"),
        ("ipv4:10.0.0.1:1,10.0.0.2:1", "ipv4:10.0.0.1:1,10.0.0.2:1", True, None),
        ("unix:/tmp/molmo.sock", "unix:/tmp/molmo.sock", False, None),
    ],
)
def test_address_forms_become_grpc_targets(addresses, target, balanced, server_name):
    resolved = server_target(addresses)
    assert (resolved.target, resolved.balanced, resolved.server_name) == (target, balanced, server_name)


@pytest.mark.parametrize(
    ("addresses", "match"),
    [
        ("127.0.0.1:1,no-port", "'no-port' is not HOST:PORT"),
        ("dns:///pool:1,127.0.0.1:2", "HOST:PORT entries only"),
        ("a.invalid:1,b.invalid:2", "cannot resolve server host 'a.invalid'"),
        (" , ", "no server address given"),
    ],
)
def test_bad_address_lists_say_what_is_wrong(addresses, match):
    with pytest.raises(TargetError, match=match):
        server_target(split_addresses(addresses))


def test_a_pool_is_round_robin_over_healthy_servers_with_one_retry_on_unavailable():
    config = json.loads(service_config())
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    assert config["healthCheckConfig"] == {"serviceName": SERVICE_NAME}
    (method,) = config["methodConfig"]
    assert method["retryPolicy"]["maxAttempts"] == 2
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    retried = {name.get("method") for name in method["name"]}
    assert "Generate" in retried and "StreamPoint" not in retried


def test_bad_urls_are_clear_errors():
    with pytest.raises(ma.ModelNotFoundError, match="grpc\\+dns://NAME:PORT"):
        ma.load_model("grpc://127.0.0.1:1,oops")
    with pytest.raises(ma.ModelNotFoundError, match="one DNS name"):
        ma.load_model("grpc+dns://a:1,b:2")


# -- two in-process servers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair(tiny_dir):
    config = ServerConfig(port=0, warmup=False, max_batch_size=8, max_batch_wait_ms=20)
    with (
        BackgroundServer(config, scripted_model(tiny_dir)) as a,
        BackgroundServer(config, scripted_model(tiny_dir)) as b,
    ):
        yield a, b


def test_a_client_with_two_addresses_uses_both_servers_and_answers_as_one(pair):
    a, b = pair
    before = served(a), served(b)
    with Client(f"{a.target},{b.target}") as pool, Client(a.target) as single:
        pooled = [pool.point(png(), query).points for query in QUERIES]
        alone = [single.point(png(), query).points for query in QUERIES]
    assert pooled == alone
    assert served(a) > before[0] + CALLS and served(b) > before[1], "both servers took calls"


def test_a_grpc_url_with_two_servers_equals_the_local_model(tiny_dir, pair):
    a, b = pair
    before = served(a), served(b)
    remote = ma.load_model(f"grpc://{a.target},{b.target}")
    local = scripted_model(tiny_dir)
    images = [png()] * CALLS
    assert remote.point(images, QUERIES) == local.point(images, QUERIES)
    assert served(a) > before[0] and served(b) > before[1]
    assert remote.info.model_id == local.info.model_id


def test_grpc_dns_url_resolves_a_name(tiny_dir, pair):
    a, _ = pair
    remote = ma.load_model(f"grpc+dns://localhost:{a.port}")
    assert remote.backend.client.server.target == f"dns:///localhost:{a.port}"
    assert remote.point(png(), "the item 25") == scripted_model(tiny_dir).point(png(), "the item 25")


def _set_health(server: BackgroundServer, status: int) -> None:
    server._call(server.running.health.set(SERVICE_NAME, status))


def test_a_server_that_stops_serving_is_skipped_and_comes_back(pair):
    a, b = pair
    with Client([a.target, b.target]) as pool:
        pool.point(png(), "the item 1")
        _set_health(a, health_pb2.HealthCheckResponse.NOT_SERVING)
        try:

            def only_b_answers() -> bool:
                before = served(a)
                for query in QUERIES:
                    pool.point(png(), query)
                return served(a) == before

            until(only_b_answers, message="the NOT_SERVING server left the rotation")
        finally:
            _set_health(a, health_pb2.HealthCheckResponse.SERVING)

        def a_answers_again() -> bool:
            before = served(a)
            pool.point(png(), "the item 2")
            return served(a) > before

        until(a_answers_again, message="the server rejoined the rotation once SERVING")


# -- TLS with several hosts ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_pair(tiny_dir, tmp_path_factory):
    """Two TLS servers with one certificate for ``localhost``, signed by itself (the CA)."""
    cert, key = self_signed_certificate(tmp_path_factory.mktemp("pool-tls"))
    config = ServerConfig(port=0, warmup=False, tls_cert=cert, tls_key=key)
    with (
        BackgroundServer(config, scripted_model(tiny_dir)) as a,
        BackgroundServer(config, scripted_model(tiny_dir)) as b,
    ):
        yield a, b, cert


def test_tls_with_several_hosts_checks_the_hosts_name(tls_pair):
    a, b, cert = tls_pair
    before = served(a), served(b)
    with Client(f"localhost:{a.port},localhost:{b.port}", tls=TlsConfig(root_certificates=cert)) as pool:
        assert [pool.point(png(), q).points[0].x_norm for q in QUERIES] == [
            (10 * i + 5) / 100 for i in range(CALLS)
        ]
    assert served(a) > before[0] and served(b) > before[1]


def test_grpcs_url_with_several_hosts(tiny_dir, tls_pair):
    a, b, cert = tls_pair
    before = served(a), served(b)
    # IP addresses with the certificate's name given explicitly
    remote = ma.load_model(f"grpcs://127.0.0.1:{a.port},127.0.0.1:{b.port}?ca={cert}&server_name=localhost")
    images = [png()] * CALLS
    assert remote.point(images, QUERIES) == scripted_model(tiny_dir).point(images, QUERIES)
    assert served(a) > before[0] and served(b) > before[1]


# -- a server killed mid-evaluation --------------------------------------------------------------------------


def _steps(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "steps.jsonl").read_text().splitlines()]


def test_killing_one_of_two_servers_mid_evaluation_loses_no_step(tiny_dir, android_control_dir, tmp_path):
    env_kwargs = {"data_dir": str(android_control_dir), "screen_size": (270, 600)}
    ports = [free_port(), free_port()]
    servers = [start_cli_server(tiny_dir, port) for port in ports]
    try:
        local_config = EvalConfig(ANDROID, tmp_path / "local", episodes=3, env_kwargs=env_kwargs)
        run_eval(local_config, ma.load_model(tiny_dir), progress=False)
        pool = ma.load_model(f"grpc://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}?timeout=30")
        config = EvalConfig(ANDROID, tmp_path / "pool", episodes=3, concurrency=3, env_kwargs=env_kwargs)
        killed: dict[str, int] = {}

        def kill_the_first_server(episode: int, lines: list[dict]) -> None:
            if not killed:  # the other episodes are still running: their calls are in flight
                killed["served"] = served_over_grpc(ports[0])
                servers[0].send_signal(signal.SIGKILL)
                servers[0].wait(30)

        summary = run_eval(config, pool, progress=False, on_episode=kill_the_first_server)
        steps, local = _steps(tmp_path / "pool"), _steps(tmp_path / "local")
        key = ("episode", "step")
        assert sorted(tuple(s[k] for k in key) for s in steps) == sorted(
            tuple(s[k] for k in key) for s in local
        )
        assert [s for s in steps if s["error"]] == [], (
            "calls that met the dead server were retried on the other"
        )
        assert summary["call_errors"] == 0 and summary["episodes"] == 3
        by_step = {(s["episode"], s["step"]): s["raw_text"] for s in local}
        assert all(s["raw_text"] == by_step[s["episode"], s["step"]] for s in steps), (
            "answers equal local ones"
        )
        # beyond the readings and the model's load-time GetModelInfo, both servers took evaluation calls
        assert killed["served"] > 2 and served_over_grpc(ports[1]) > 2

        servers[0] = start_cli_server(tiny_dir, ports[0])  # back on the same port: it rejoins the rotation

        def first_server_answers() -> bool:
            before = served_over_grpc(ports[0])
            pool.point(png(), "the item 3")
            return served_over_grpc(ports[0]) > before + 1  # +1: the reading itself

        until(first_server_answers, timeout_s=60, message="the restarted server took calls again")
    finally:
        for server in servers:
            server.kill()
            server.wait(30)
