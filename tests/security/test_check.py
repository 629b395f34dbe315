"""`check_registry`: finds missing, corrupt and undecryptable artifacts and dangling aliases;
a kill -9 during registrations or re-encryption leaves a registry it finds consistent."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from onnx_models import Classifier
from register_many import SIGNATURE, payload
from security_helpers import new_cipher

from maas.registry import ModelVersion, Registry, schema
from maas.registry.check import check_registry
from maas.registry.encryption import ArtifactCipher, is_encrypted

WORKER = Path(__file__).with_name("register_many.py")
WAIT_LIMIT_S = 180  # generous: the machine may be busy; not a timing assertion


def test_a_sound_registry_is_consistent(registry: Registry, registered: ModelVersion) -> None:
    registry.set_alias("digits", "production", 1)
    report = check_registry(registry)
    assert report.is_consistent
    assert (report.versions, report.files, report.problems, report.notes) == (1, 2, (), ())
    assert report.to_dict()["consistent"] is True


def test_missing_and_corrupt_files_are_problems(
    registry: Registry, registered: ModelVersion, artifacts_dir: Path
) -> None:
    model_path = artifacts_dir / "sha256" / registered.digest[:2] / registered.digest
    model_path.write_bytes(model_path.read_bytes()[:-1] + b"\x00")
    labels = registered.files["labels.txt"]
    (artifacts_dir / "sha256" / labels[:2] / labels).unlink()
    report = check_registry(registry)
    assert not report.is_consistent
    assert len(report.problems) == 2
    assert "digits@1 model.onnx: artifact of digits@1 (model.onnx) is corrupt" in report.problems[0]
    assert "digits@1 labels.txt: artifact of digits@1 (labels.txt) is missing" in report.problems[1]


def test_a_dangling_alias_is_a_problem(
    registry: Registry, registered: ModelVersion, registry_url: str
) -> None:
    registry.set_alias("digits", "production", 1)
    engine = sa.create_engine(registry_url)
    try:
        with engine.begin() as conn:  # what a hand edit or a buggy tool could leave behind
            conn.execute(sa.update(schema.aliases).values(version=7))
    finally:
        engine.dispose()
    report = check_registry(registry)
    assert report.problems == ("digits@production points at missing version 7",)


def test_undecryptable_files_are_problems(
    registry_url: str, artifacts_dir: Path, classifier: Classifier
) -> None:
    with Registry(registry_url, artifacts_dir, cipher=new_cipher()) as reg:
        reg.register("digits", classifier.model_bytes, signature=classifier.signature)
    with Registry(registry_url, artifacts_dir, cipher=new_cipher()) as other:
        (problem,) = check_registry(other).problems
    assert "digits@1 model.onnx: artifact of digits@1 (model.onnx) is encrypted with key" in problem


def test_unreferenced_files_are_notes(
    registry: Registry, registered: ModelVersion, artifacts_dir: Path
) -> None:
    from maas.registry.artifacts import ArtifactStore

    # What a registration killed after writing its file but before its commit leaves behind.
    stray = ArtifactStore(artifacts_dir).write(b"bytes of a registration that never committed")
    report = check_registry(registry)
    assert report.is_consistent
    assert report.notes == (f"unreferenced artifact file sha256 {stray}",)


def start_worker(url: str, artifacts_dir: Path, count: int, key: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), url, str(artifacts_dir), str(count), key],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_kill_9_during_100_registrations_leaves_a_consistent_registry(
    registry_url: str, artifacts_dir: Path
) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    with Registry(registry_url, artifacts_dir):
        pass  # migrate first, so the worker spends its time registering
    worker = start_worker(registry_url, artifacts_dir, 100, key)
    assert worker.stdout is not None
    done = [int(worker.stdout.readline()) for _ in range(20)]
    os.kill(worker.pid, signal.SIGKILL)  # in the middle of some registration
    worker.wait(timeout=WAIT_LIMIT_S)
    assert worker.returncode == -signal.SIGKILL
    done += [int(line) for line in worker.stdout.read().split()]
    worker.stdout.close()
    assert worker.stderr is not None
    worker.stderr.close()
    with Registry(registry_url, artifacts_dir, cipher=ArtifactCipher.from_base64(key)) as reg:
        report = check_registry(reg)
        assert report.is_consistent, report.problems
        versions = {mv.version: mv for mv in reg.list_versions("crash")}
        assert set(done) <= set(versions)  # every completed registration is there
        assert len(versions) < 100
        for number, mv in versions.items():
            assert reg.read_artifact(mv) == payload(number - 1)
            assert reg.read_file(mv, "x.bin") == payload(number - 1)[::-1]
        assert reg.get("crash", "latest-good").version >= max(done)
        for digest in reg.stored_digests():
            path = artifacts_dir / "sha256" / digest[:2] / digest
            assert is_encrypted(path.read_bytes())


ENCRYPT_SCRIPT = """
import sys
from pathlib import Path
from maas.registry import Registry
from maas.registry.encryption import ArtifactCipher
with Registry(sys.argv[1], Path(sys.argv[2]), cipher=ArtifactCipher.from_base64(sys.argv[3])) as r:
    print("start", flush=True)
    r.reencrypt_artifacts()
"""


def any_encrypted(artifacts_dir: Path) -> bool:
    for path in (artifacts_dir / "sha256").glob("??/[0-9a-f]*"):
        with path.open("rb") as handle:  # files are replaced, never removed, while encrypting
            if is_encrypted(handle.read(8)):
                return True
    return False


@pytest.mark.slow
def test_kill_9_during_encryption_loses_nothing(tmp_path: Path) -> None:
    url, artifacts_dir = f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "artifacts"
    with Registry(url, artifacts_dir) as reg:
        for i in range(60):
            reg.register("m", payload(i), signature=SIGNATURE)
    key = base64.b64encode(os.urandom(32)).decode()
    proc = subprocess.Popen(
        [sys.executable, "-c", ENCRYPT_SCRIPT, url, str(artifacts_dir), key],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "start"
    while proc.poll() is None and not any_encrypted(artifacts_dir):
        pass  # wait until it is under way, then kill it
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=WAIT_LIMIT_S)
    proc.stdout.close()
    with Registry(url, artifacts_dir, cipher=ArtifactCipher.from_base64(key)) as reg:
        assert check_registry(reg).is_consistent  # plaintext and encrypted files both readable
        reg.reencrypt_artifacts()  # finishing the job after the crash works
        versions = reg.list_versions("m")
        assert len(versions) == 60
        for mv in versions:
            assert reg.read_artifact(mv) == payload(mv.version - 1)
