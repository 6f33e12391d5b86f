"""Real processes: a SuperLink and 3 SuperNodes on loopback with TLS and node
authentication, running secure sums through ``flwr run``.

The default run checks one SecAgg+ session (exact sum over all nodes) and
that every process is gone afterwards; the slow run also SIGKILLs a SuperNode
mid-session (its fast counterpart is the fake-Grid suite in
test_flower_transport.py).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr")

from protocols.flower.deployment import (
    DeploymentError,
    LocalDeployment,
    _alive,
    _descendants,
    make_node_key,
    make_tls_material,
)

APP = Path(__file__).parent / "flower_sum_app"


def _run(d: LocalDeployment, **config) -> list[dict]:
    result = d.root / "result.json"
    d.run_app(APP, {"result-path": str(result), **config}, timeout=400)
    return json.loads(result.read_text())


def _check_exact(session: dict, included: set[int]) -> None:
    assert set(session["included"]) == included
    assert session["max_error"] <= session["error_bound"]


def test_tls_material_and_node_keys(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ca, cert, key = make_tls_material(tmp_path)
    ca_cert = x509.load_pem_x509_certificate(ca.read_bytes())
    server = x509.load_pem_x509_certificate(cert.read_bytes())
    server.verify_directly_issued_by(ca_cert)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert isinstance(ca_cert.public_key(), ec.EllipticCurvePublicKey)
    assert ca_cert.public_key().curve.name == "secp384r1"
    assert os.stat(key).st_mode & 0o077 == 0
    priv, pub = make_node_key(tmp_path, "n")
    k = serialization.load_ssh_private_key(priv.read_bytes(), None)
    assert isinstance(k, ec.EllipticCurvePrivateKey) and k.curve.name == "secp384r1"
    assert pub.read_text().startswith("ecdsa-sha2-nistp384 ")
    with pytest.raises(DeploymentError):
        make_tls_material(tmp_path, days=0)


def test_bad_deployment_parameters():
    with pytest.raises(DeploymentError):
        LocalDeployment(0)
    with pytest.raises(DeploymentError):
        LocalDeployment(3, start_timeout=0.1)


def test_secagg_plus_session_over_tls_and_node_auth():
    with LocalDeployment(3, start_timeout=120) as d:
        started = [p.pid for p in d._procs]
        node_ids = {h.node_id for h in d.handles}
        [session] = _run(d, sessions=1, dimension=1000)
        family = _descendants(set(started))
    assert set(session["nodes"]) == node_ids
    _check_exact(session, node_ids)
    assert [r["name"] for r in session["rounds"]] == [
        "advertise", "share_keys", "masked_input", "unmask"]
    # every process the deployment started, and everything they started, is gone
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in [*started, *family]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in [*started, *family] if _alive(p)]


@pytest.mark.slow
def test_processes_stop_on_an_exception():
    d = LocalDeployment(1, start_timeout=120)
    with pytest.raises(RuntimeError, match="boom"), d:
        pids = [p.pid for p in d._procs]
        raise RuntimeError("boom")
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)]


@pytest.mark.slow
def test_a_supernode_killed_mid_session_leaves_an_exact_sum():
    with LocalDeployment(3, start_timeout=120) as d:
        progress = d.root / "progress"
        victim = d.handles[0]

        def killer() -> None:
            end = time.monotonic() + 300
            while time.monotonic() < end:
                if progress.exists():
                    d.kill_node(0)
                    progress.unlink()
                    return
                time.sleep(0.05)

        threading.Thread(target=killer, daemon=True).start()
        first, second = _run(d, sessions=2, dimension=1000, **{
            "progress-path": str(progress), "pause-at": "1:share_keys",
            "round-timeout": 15.0})
    everyone = {h.node_id for h in d.handles}
    _check_exact(first, everyone)
    _check_exact(second, everyone - {victim.node_id})
    share_keys = second["rounds"][1]
    assert str(victim.node_id) in share_keys["dropped"]


@pytest.mark.slow
def test_malicious_mode_with_registry_files_on_the_nodes():
    with LocalDeployment(3, start_timeout=120, identity=True) as d:
        node_ids = {h.node_id for h in d.handles}
        [session] = _run(d, sessions=1, dimension=500, **{"registry-path": str(d.registry)})
    _check_exact(session, node_ids)
    assert "consistency" in [r["name"] for r in session["rounds"]]


def test_sigterm_becomes_an_exception_that_unwinds_the_deployment():
    """No processes: the handler a deployment installs turns SIGTERM into
    ``Terminated`` (so ``with`` blocks stop their processes) and is undone."""
    import signal

    from protocols.flower.deployment import Terminated, _restore_sigterm, _stop_on_sigterm

    before = signal.getsignal(signal.SIGTERM)
    previous = _stop_on_sigterm()
    try:
        with pytest.raises(Terminated) as info:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs before this returns
        assert info.value.code == 128 + signal.SIGTERM
    finally:
        _restore_sigterm(previous)
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.slow
def test_processes_stop_when_the_launcher_gets_sigterm(tmp_path):
    import signal
    import subprocess
    import sys

    script = (
        "import sys, time\n"
        "from protocols.flower.deployment import LocalDeployment\n"
        "with LocalDeployment(1, start_timeout=120) as d:\n"
        "    print(' '.join(str(p.pid) for p in d._procs), flush=True)\n"
        "    time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        pids = [int(x) for x in proc.stdout.readline().split()]
        assert pids
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in pids if _alive(p)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
