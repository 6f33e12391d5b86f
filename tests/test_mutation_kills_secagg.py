"""Bindings and checks of the pairwise-mask protocol that a one-line bug could
weaken unnoticed, each tested against public behaviour (real parties, the
real codec): every test here fails with its check weakened."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from protocols.secagg import (
    KeyBroadcast,
    Message,
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    decode,
    encode,
)
from secagg import kex
from secagg.errors import IntegrityError
from secagg.sign import SigningKey


def _messages(envelopes: list[Any]) -> list[Message]:
    return [e.message for e in envelopes]


def _malicious(n: int, t: int) -> tuple[SecAggConfig, dict[int, SigningKey]]:
    keys = {u: SigningKey.generate() for u in range(1, n + 1)}
    cfg = SecAggConfig.create(keys, 3, threshold=t, degree="complete", mode="malicious",
                              corrupt_fraction=0.0, session_id=5,
                              registry={u: k.verify_key() for u, k in keys.items()})
    return cfg, keys


def _key_broadcasts(cfg: SecAggConfig, keys: dict[int, SigningKey]
                    ) -> tuple[dict[int, SecAggClient], dict[int, KeyBroadcast]]:
    rng = np.random.default_rng(3)
    clients = {u: SecAggClient(cfg, u, signing_key=keys[u],
                               input=rng.integers(0, 2**32, cfg.dimension, dtype=np.uint32))
               for u in cfg.client_ids}
    server = SecAggServer(cfg)
    out: list[Message] = []
    for c in clients.values():
        for m in _messages(c.start()):
            out += _messages(server.handle(decode(encode(m, cfg), cfg)))
    assert all(isinstance(m, KeyBroadcast) for m in out) and len(out) == cfg.n
    return clients, {m.receiver: m for m in out}  # type: ignore[misc]


@pytest.mark.parametrize("field", ["c_public", "s_public"])
def test_an_advertised_key_swapped_under_its_signature_is_refused(field: str) -> None:
    """The advertisement signature covers both public keys: a server that shows
    a neighbour's mask key (or channel key) replaced by one it chose, with the
    neighbour's signature kept, is caught (it would learn the pairwise seed)."""
    cfg, keys = _malicious(4, 3)
    clients, kb = _key_broadcasts(cfg, keys)
    mine = kb[1]
    fake = kex.PrivateKey.generate().public_key().to_bytes()
    swapped = tuple(dataclasses.replace(e, **{field: fake}) if e.client == 2 else e
                    for e in mine.keys)
    forged = KeyBroadcast(receiver=1, keys=swapped)
    with pytest.raises(IntegrityError):
        clients[1].handle(decode(encode(forged, cfg), cfg))
    assert clients[1].state == "advertised"
    clients[1].handle(decode(encode(mine, cfg), cfg))
    assert clients[1].state == "shared"
