"""`maas serve --workers N`: real worker processes on shared ports, real clients over 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import numpy as np
import psutil
import pytest
from onnx_models import build_classifier
from worker_processes import WAIT_S, Served, infer_once, request_count, scrape, serving

from maas.config import load_settings
from maas.errors import Unavailable
from maas.protocol.proto import grpc_service_pb2 as pb
from maas.protocol.proto import grpc_service_pb2_grpc as pb_grpc
from maas.registry.store import Registry
from maas.security.keys import KeyStore
from maas.security.ratelimit import RateLimit
from maas.serving.workers import hold_ports, resolve_worker_count

REDIS_URL = "redis://127.0.0.1:6379/0"  # the Redis every test machine runs
ROWS = np.arange(8, dtype=np.float32).reshape(2, 4) / 8
BODY = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 4], "data": ROWS.tolist()}]}


def register(home: Path, *seeds: int) -> None:
    """Register one `iris` version per seed (different weights, so different answers)."""
    with Registry.from_settings(load_settings(home=home)) as registry:
        for seed in seeds:
            model = build_classifier(4, 3, seed=seed)
            registry.register(
                "iris", model.model_bytes, signature=model.signature, labels=model.labels
            )


def answers_until_both(served: Served, want: int, **kwargs: str) -> dict[int, list[int]]:
    """Send requests on new connections until each of the `want` workers has answered."""
    seen: dict[int, list[int]] = {}
    give_up = time.monotonic() + WAIT_S
    while len(seen) < want:
        assert time.monotonic() < give_up, seen
        answer = infer_once(served, BODY, **kwargs)
        assert answer.pid is not None
        seen.setdefault(answer.pid, []).append(answer.status)
    return seen


def test_auto_is_the_cpus_this_process_may_use() -> None:
    assert resolve_worker_count("auto") == len(os.sched_getaffinity(0))
    assert resolve_worker_count(3) == 3


def test_held_ports_are_shared_only_with_reuseport_listeners() -> None:
    held = hold_ports("127.0.0.1", (0, 0))
    try:
        ports = [sock.getsockname()[1] for sock in held]
        assert 0 not in ports
        assert ports[0] != ports[1]
        with socket.socket() as plain, pytest.raises(OSError, match="in use"):
            plain.bind(("127.0.0.1", ports[0]))  # nothing else takes the port
        with socket.socket() as worker:
            worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            worker.bind(("127.0.0.1", ports[0]))  # a worker does
            worker.listen()
            with pytest.raises(Unavailable, match="in use"):
                hold_ports("127.0.0.1", (ports[0],))
    finally:
        for sock in held:
            sock.close()


@pytest.mark.slow
def test_two_workers_answer_rest_and_grpc_and_metrics_add_up(tmp_path: Path) -> None:
    register(tmp_path, 5)
    with serving(tmp_path) as served:
        workers = served.wait_for_workers(2)
        answers = [infer_once(served, BODY) for _ in range(24)]
        channels = [
            grpc.insecure_channel(
                f"127.0.0.1:{served.grpc_port}", options=[("grpc.use_local_subchannel_pool", 1)]
            )
            for _ in range(12)
        ]
        try:
            request = pb.ModelInferRequest(
                model_name="iris",
                inputs=[
                    pb.ModelInferRequest.InferInputTensor(
                        name="input", datatype="FP32", shape=[2, 4]
                    )
                ],
                raw_input_contents=[ROWS.tobytes()],
            )
            grpc_answers = [
                pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
                for channel in channels
            ]
            grpc_holders = Counter(
                pid
                for pid in workers
                for c in psutil.Process(pid).net_connections("tcp")
                if c.laddr.port == served.grpc_port and c.status == psutil.CONN_ESTABLISHED
            )
        finally:
            for channel in channels:
                channel.close()
        samples = scrape(served)
    assert {a.status for a in answers} == {200}
    assert {a.pid for a in answers} == workers  # both workers answered REST
    assert all(a.body["outputs"][0]["name"] == "probabilities" for a in answers)
    assert [a.outputs[0].name for a in grpc_answers] == ["probabilities"] * 12
    assert set(grpc_holders) == workers  # both workers answered gRPC
    assert sum(grpc_holders.values()) == 12
    assert request_count(samples, protocol="rest", code="ok") == 24  # one scrape, all workers
    assert request_count(samples, protocol="grpc", code="ok") == 12
    assert samples[("maas_models_loaded", ())] == 1


def _load(url: str, stop: threading.Event) -> tuple[int, int]:
    """Send inferences over one keep-alive client until `stop`; (successes, failures)."""
    ok = failed = 0
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            try:
                reply = client.post(url, json=BODY)
            except httpx.TransportError:
                failed += 1
                continue
            ok += reply.status_code == 200
            failed += reply.status_code != 200
    return ok, failed


@pytest.mark.slow
def test_a_killed_worker_fails_only_its_requests_and_is_replaced(tmp_path: Path) -> None:
    register(tmp_path, 5)
    clients = 4
    with serving(tmp_path, env={"MAAS_LOG_LEVEL": "info"}) as served:
        first = served.wait_for_workers(2)
        (spare,) = served.children() - first
        log = tmp_path / "serve.log"
        while f"worker.imported pid={spare}" not in log.read_text():  # the spare waits, ready
            time.sleep(0.05)
        stop = threading.Event()
        url = f"http://127.0.0.1:{served.http_port}/v2/models/iris/infer"
        with ThreadPoolExecutor(clients) as pool:
            loads = [pool.submit(_load, url, stop) for _ in range(clients)]
            while request_count(scrape(served), code="ok") < 40:
                time.sleep(0.05)
            victim = min(first)
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            replaced = served.wait_for_workers(2)
            print(f"replacement listening {time.monotonic() - killed_at:.2f} s after the kill")
            seen = answers_until_both(served, 2)
            stop.set()
            results = [load.result(timeout=WAIT_S) for load in loads]
        ok = sum(r[0] for r in results)
        failed = sum(r[1] for r in results)
        answered = sum(len(statuses) for statuses in seen.values())
        counted = request_count(scrape(served), protocol="rest", code="ok")
    assert victim not in replaced
    assert replaced - first == {spare}  # the spare took the dead worker's place ...
    assert set(seen) == replaced  # ... that answers
    assert {status for statuses in seen.values() for status in statuses} == {200}
    assert failed <= clients  # at most the requests in flight on the killed worker
    assert ok > 0
    # the dead worker's counts stay in the sum (a request it counted may have died on the wire)
    assert ok + answered <= counted <= ok + answered + failed


@pytest.mark.slow
def test_sigterm_lets_every_worker_drain_and_the_supervisor_exits_0(tmp_path: Path) -> None:
    register(tmp_path, 5)
    serve_file = tmp_path / "serve.yaml"
    serve_file.write_text("defaults: {max_batch_size: 64, max_queue_delay_us: 1000000}\n")
    with serving(tmp_path, "--config", str(serve_file)) as served:
        workers = served.wait_for_workers(2)
        with ThreadPoolExecutor(8) as pool:
            pending = [pool.submit(infer_once, served, BODY) for _ in range(8)]
            time.sleep(0.5)  # let the requests reach the workers' queues (they wait up to 1 s)
            served.process.send_signal(signal.SIGTERM)
            answers = [p.result(timeout=WAIT_S) for p in pending]
        code = served.process.wait(timeout=WAIT_S)
    assert [a.status for a in answers] == [200] * 8
    assert {a.pid for a in answers} == workers  # both were draining requests
    assert code == 0
    assert not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in workers
    )


@pytest.mark.slow
def test_every_worker_follows_an_alias_move_and_a_key_revocation(tmp_path: Path) -> None:
    register(tmp_path, 5, 6)
    with Registry.from_settings(load_settings(home=tmp_path)) as registry:
        registry.set_alias("iris", "production", 1)
        token = KeyStore(registry).create("app", ["infer:iris"]).token
    env = {"MAAS_SECURITY_KEY_POLL_INTERVAL_S": "0.2"}
    flags = ("--model", "iris@production", "--poll-interval", "0.2")
    with serving(tmp_path, *flags, env=env) as served:
        served.wait_for_workers(2)
        before = {infer_once(served, BODY, token=token).body["model_version"] for _ in range(8)}
        with Registry.from_settings(load_settings(home=tmp_path)) as registry:
            registry.set_alias("iris", "production", 2)
        moved: set[int] = set()
        give_up = time.monotonic() + WAIT_S
        while len(moved) < 2:
            assert time.monotonic() < give_up, moved
            answer = infer_once(served, BODY, token=token)
            if answer.body.get("model_version") == "2" and answer.pid is not None:
                moved.add(answer.pid)
        with Registry.from_settings(load_settings(home=tmp_path)) as registry:
            KeyStore(registry).revoke("app")
        refused: set[int] = set()
        while len(refused) < 2:
            assert time.monotonic() < give_up + WAIT_S, refused
            answer = infer_once(served, BODY, token=token)
            if answer.status == 401 and answer.pid is not None:
                refused.add(answer.pid)
        workers = served.worker_pids()
    assert before == {"1"}
    assert moved == workers
    assert refused == workers


@pytest.mark.slow
def test_a_rate_limit_holds_across_workers_through_redis(tmp_path: Path) -> None:
    register(tmp_path, 5)
    with Registry.from_settings(load_settings(home=tmp_path)) as registry:
        limit = RateLimit(rate_per_s=6 / 3600, burst=6)  # 6 now, then one every 10 minutes
        token = KeyStore(registry).create("metered", ["infer:iris"], rate_limit=limit).token
    with serving(tmp_path, env={"MAAS_REDIS_URL": REDIS_URL}) as served:
        served.wait_for_workers(2)
        answers = [infer_once(served, BODY, token=token) for _ in range(16)]
    statuses = Counter(a.status for a in answers)
    assert statuses == {200: 6, 429: 10}  # one bucket for both workers
    assert len({a.pid for a in answers}) == 2


@pytest.mark.slow
def test_workers_drain_and_exit_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    register(tmp_path, 5)
    with serving(tmp_path) as served:
        workers = served.wait_for_workers(2)
        children = [psutil.Process(pid) for pid in served.children()]
        served.process.kill()
        served.process.wait(timeout=WAIT_S)
        give_up = time.monotonic() + WAIT_S
        while any(_is_running(child) for child in children):
            assert time.monotonic() < give_up, [c.pid for c in children if _is_running(c)]
            time.sleep(0.05)
        orphaned = (tmp_path / "serve.log").read_text().count("worker.orphaned")
    assert len(children) == 3  # two workers and the spare
    assert workers < {child.pid for child in children}
    assert orphaned == 2  # both workers noticed, and drained


def _is_running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
