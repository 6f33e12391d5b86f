"""Real processes: threshold Paillier in malicious mode over a SuperLink and 3
SuperNodes on loopback with TLS and node authentication; the key dealt and
the identity registry written out of band by the launcher.

Two sessions give exact sums, each node signing its encrypted update with its
own identity key and each committee node multiplying the signed inputs
itself; every process is gone afterwards. (The fake-Grid suite in
test_flower_paillier_malicious.py plays the lying ServerApp.)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr")

from protocols.flower.deployment import LocalDeployment, _alive, _descendants
from protocols.flower.journal import read_journal
from protocols.flower.paillier import JOURNAL_CONFIG_KEY
from protocols.paillier_sum import read_public

APP = Path(__file__).parent / "flower_sum_app"


def test_malicious_threshold_paillier_sessions_over_tls_and_node_auth():
    with LocalDeployment(3, start_timeout=120, identity=True, paillier_committee=3,
                         paillier_threshold=2) as d:
        started = [p.pid for p in d._procs]
        node_ids = {h.node_id for h in d.handles}
        for h in d.handles:  # the identity reaches each node through its node config only
            assert h.node_config["secagg-registry"] == str(d.registry)
        public = read_public(d.paillier_public)
        assert public.mode == "malicious"  # identity=True: the key runs malicious sessions only
        journals = {h.node_id: h.node_config[JOURNAL_CONFIG_KEY] for h in d.handles}
        assert len(set(journals.values())) == 3  # one journal folder per node
        result = d.root / "result.json"
        d.run_app(APP, {"result-path": str(result), "protocol": "paillier", "sessions": 2,
                        "dimension": 200, "paillier-public": str(d.paillier_public),
                        "registry-path": str(d.registry), "round-timeout": 60.0},
                  timeout=300)
        sessions = json.loads(result.read_text())
        family = _descendants(set(started))
        # every node recorded both sessions' digests in its journal, on disk
        spent = {n: read_journal(f, n, public.key.digest) for n, f in journals.items()}
    assert len(sessions) == 2
    assert all(len(v) == 2 for v in spent.values()) and len(set(spent.values())) == 1
    for session in sessions:
        assert set(session["included"]) == node_ids
        assert session["max_error"] <= session["error_bound"]
        assert [r["name"] for r in session["rounds"]] == ["encrypt", "decrypt"]
        decrypt = session["rounds"][1]
        assert decrypt["sent_to"] == 3 and not decrypt["dropped"]
        # each committee node received every signed input (semi-honest: one product), so
        # the decrypt round sends about 3x what the encrypt round brought in
        assert decrypt["bytes_down"] >= 2.5 * session["rounds"][0]["bytes_up"]
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in [*started, *family]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in [*started, *family] if _alive(p)]
