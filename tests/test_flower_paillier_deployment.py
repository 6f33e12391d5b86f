"""Real processes: threshold Paillier over a SuperLink and 3 SuperNodes on loopback
with TLS and node authentication, the key dealt out of band by the launcher.

One session gives the exact sum in two round trips, the share files reach the
committee nodes only through their node config, and every process is gone
afterwards. (The fake-Grid suite in test_flower_paillier.py covers dropouts,
faulty decryptors, mismatched public material and restarts.)
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr")

from protocols.flower.deployment import DeploymentError, LocalDeployment, _alive, _descendants
from protocols.flower.paillier import PUBLIC_CONFIG_KEY, SHARE_CONFIG_KEY
from protocols.paillier_sum import read_public

APP = Path(__file__).parent / "flower_sum_app"


def test_bad_paillier_deployment_parameters():
    with pytest.raises(DeploymentError, match="paillier_committee"):
        LocalDeployment(3, paillier_committee=4)
    with pytest.raises(DeploymentError, match="paillier_threshold"):
        LocalDeployment(3, paillier_committee=2, paillier_threshold=3)


def test_threshold_paillier_session_over_tls_and_node_auth():
    with LocalDeployment(3, start_timeout=120, paillier_committee=3,
                         paillier_threshold=2) as d:
        started = [p.pid for p in d._procs]
        node_ids = {h.node_id for h in d.handles}
        public = read_public(d.paillier_public)
        assert set(public.committee) == node_ids and public.threshold == 2
        assert public.mode == "semi-honest"  # no identity: dealt for semi-honest sessions
        for h in d.handles:  # every node names the public file and its own share only
            assert h.node_config[PUBLIC_CONFIG_KEY] == str(d.paillier_public)
            share = Path(str(h.node_config[SHARE_CONFIG_KEY]))
            assert str(h.node_id) in share.name and os.stat(share).st_mode & 0o077 == 0
        result = d.root / "result.json"
        d.run_app(APP, {"result-path": str(result), "protocol": "paillier", "sessions": 1,
                        "dimension": 200, "paillier-public": str(d.paillier_public),
                        "round-timeout": 60.0},
                  timeout=300)
        [session] = json.loads(result.read_text())
        family = _descendants(set(started))
    assert set(session["included"]) == node_ids
    assert session["max_error"] <= session["error_bound"]
    assert [r["name"] for r in session["rounds"]] == ["encrypt", "decrypt"]
    assert session["rounds"][1]["sent_to"] == 3 and not session["rounds"][1]["dropped"]
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in [*started, *family]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in [*started, *family] if _alive(p)]
