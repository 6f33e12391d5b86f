"""What the malicious-aggregator mode of threshold Paillier costs a decryptor.

Side by side, on one dealt key and the same inputs, per committee member:

* semi-honest: the decryption request is the aggregator's product
  (``EncryptedSum``); the decryptor parses it and partially decrypts it;
* malicious: the request carries every included input with its Ed25519
  signature and its proofs of plaintext knowledge in committed form
  (``SignedInputs``); the decryptor verifies every signature, parses every
  vector, verifies ALL proofs in one batch
  (:func:`secagg.paillier.popk.verify_batch`), multiplies them mod n^2
  itself, then partially decrypts the product.

Reported: the encoded request's bytes in both modes, the decryptor's
check-and-multiply time (proofs included) and its partial-decryption time,
with the ratio; side by side, the same check as it was before batching
(the same proofs in compact form, each verified one by one with
:func:`secagg.paillier.popk.verify_vector`) and the bytes of each form, per
input and per request; and, per client, encryption with and without proofs
and the bytes the proofs add to an input (best of ``--repeat`` runs, wall
clock, one process). Run with
``python -m benchmarks.paillier_malicious [--bits 2048] [--clients 5 10 20]
[--dimension 1000]``; ``--quick`` uses a 1024-bit key under the test-only
flag (for a smoke run, not for figures).
"""

from __future__ import annotations

import argparse
from typing import Any

import gmpy2
import numpy as np

from protocols import paillier_sum as ps
from protocols.core import SERVER
from protocols.paillier_sum.messages import open_vector
from protocols.paillier_sum.parties import _signed_product, decryption_context
from secagg import paillier
from secagg.paillier import popk
from secagg.paillier import threshold as tp

from ._common import best_of, table, write_json


def _request(keypair: Any, n: int, dimension: int, mode: str, insecure: bool) -> tuple[Any, ...]:
    """One session driven to its decryption request: (config, codec, request,
    decryptor party, packing layout, public key)."""
    kw: dict[str, Any] = {"insecure_allow_small_key_for_tests": True} if insecure else {}
    s = ps.PAILLIER_SUM.make_session(range(n), dimension, trust="threshold", keypair=keypair,
                                     committee=[0, 1, 2], decrypt_threshold=2, seed=1,
                                     min_clients=2, mode=mode, **kw)
    rng = np.random.default_rng(0)
    for c in s.clients.values():
        c.set_input(s.encoder.encode(rng.uniform(-1, 1, dimension)))
    agg: Any = s.coordinator
    clients: dict[Any, Any] = dict(s.clients)
    out: list[Any] = []
    for e in s.others[ps.DEALER].start():
        if e.receiver == SERVER:
            agg.handle(e.message)
        else:
            out += clients[e.receiver].handle(e.message)
    for e in out:
        sent = agg.handle(e.message)
    codec = ps.PaillierSumCodec(s.config, **kw)
    return s.config, codec, sent[0].message, s.clients[0], agg.layout, keypair[0]


def _compact(pk: Any, vec: Any, committed: Any, context: bytes) -> popk.ProofVector:
    """The compact form ``(e, z, w)`` of the same proofs (what version 4
    inputs carried): ``e`` recomputed from each commitment ``a``."""
    n = int(pk.n)
    w2 = (int(pk.nsquare).bit_length() + 7) // 8
    head = popk._head(n, vec._ciphertexts, context)
    quads = [(popk._challenge(head, j, c, gmpy2.mpz(p.a), w2), p.a, p.z, p.w)
             for j, (c, p) in enumerate(zip(vec._ciphertexts, committed.proofs, strict=True))]
    return popk.ProofVector._of(n, committed.key_fingerprint, quads)


def _check_one_by_one(cfg: Any, layout: Any, pk: Any, msg: Any, compact: list[bytes],
                      insecure: bool) -> Any:
    """The decryptor's check before batching (version 4): per input, the
    signature, parsing, then that input's compact proofs one by one
    (:func:`popk.verify_vector`); then the product."""
    vectors = []
    for i, proofs in zip(msg.inputs, compact, strict=True):
        cfg.registry[i.sender].verify(
            i.signature, ps.input_signing_payload(cfg, i.sender, i.payload, i.proofs))
        vec = open_vector(i.payload, pk, insecure)
        assert vec.layout == layout and vec.summands == 1
        pv = popk.ProofVector.from_bytes(proofs, pk, count=len(vec.ciphertexts),
                                         insecure_allow_small_key_for_tests=insecure)
        popk.verify_vector(vec, pv, context=ps.proof_context(cfg, i.sender))
        vectors.append(vec)
    return paillier.aggregate(vectors)


def measure(keypair: Any, n: int, dimension: int, repeat: int, insecure: bool) -> dict[str, Any]:
    """One row: request bytes and decryptor times in both modes for ``n`` clients."""
    row: dict[str, Any] = {"clients": n, "dimension": dimension}
    cfg, codec, msg, member, layout, pk = _request(keypair, n, dimension, "semi-honest",
                                                       insecure)
    row["request_bytes_semi"] = len(codec.encode(msg))
    vec = open_vector(msg.payload, pk, insecure)
    share = member._share
    row["partial_s"] = best_of(lambda: tp.partial_decrypt(
        share, vec, context=decryption_context(cfg)), repeat)
    cfg, codec, msg, member, layout, pk = _request(keypair, n, dimension, "malicious",
                                                       insecure)
    row["request_bytes_mal"] = len(codec.encode(msg))
    # the protocol's check: cheap checks per input, then ONE verify_batch over all
    row["check_and_multiply_s"] = best_of(
        lambda: _signed_product(cfg, layout, pk, msg, insecure), repeat)
    product, _ = _signed_product(cfg, layout, pk, msg, insecure)
    share = member._share
    row["partial_mal_s"] = best_of(lambda: tp.partial_decrypt(
        share, product, context=decryption_context(cfg)), repeat)
    # the same inputs' proofs in compact form, checked one by one (version 4)
    vectors = [open_vector(i.payload, pk, insecure) for i in msg.inputs]
    contexts = [ps.proof_context(cfg, i.sender) for i in msg.inputs]
    committed = [popk.BatchableProofVector.from_bytes(
        i.proofs, pk, count=len(v.ciphertexts), insecure_allow_small_key_for_tests=insecure)
        for i, v in zip(msg.inputs, vectors, strict=True)]
    compact = [_compact(pk, v, b, c) for v, b, c in zip(vectors, committed, contexts,
                                                           strict=True)]
    compact_bytes = [p.to_bytes() for p in compact]
    assert _check_one_by_one(cfg, layout, pk, msg, compact_bytes,
                             insecure).ciphertexts == product.ciphertexts
    row["check_one_by_one_s"] = best_of(
        lambda: _check_one_by_one(cfg, layout, pk, msg, compact_bytes, insecure), repeat)

    def verify_each() -> None:
        for v, p, c in zip(vectors, compact, contexts, strict=True):
            popk.verify_vector(v, p, context=c)

    row["verify_all_each_s"] = best_of(verify_each, repeat)
    batch_items = list(zip(vectors, committed, contexts, strict=True))
    row["verify_all_batched_s"] = best_of(lambda: popk.verify_batch(batch_items), repeat)
    row["each / batched"] = row["verify_all_each_s"] / row["verify_all_batched_s"]
    extra = sum(len(i.proofs) - len(b) for i, b in zip(msg.inputs, compact_bytes, strict=True))
    row["request_bytes_compact"] = row["request_bytes_mal"] - extra
    row["input_bytes_compact"] = (len(msg.inputs[0].payload) + 64 + len(compact_bytes[0]))
    row["input_bytes_committed"] = (len(msg.inputs[0].payload) + 64
                                    + len(msg.inputs[0].proofs))
    row["proof_bytes_compact"] = len(compact_bytes[0])
    row["proof_bytes_committed"] = len(msg.inputs[0].proofs)
    row["check 1-by-1 / partial (before)"] = row["check_one_by_one_s"] / row["partial_mal_s"]
    row["check batched / partial (after)"] = row["check_and_multiply_s"] / row["partial_mal_s"]
    row["before / after"] = row["check_one_by_one_s"] / row["check_and_multiply_s"]
    row["bytes mal / semi (after)"] = row["request_bytes_mal"] / row["request_bytes_semi"]
    row["bytes mal / semi (before)"] = row["request_bytes_compact"] / row["request_bytes_semi"]
    return row


def measure_client(keypair: Any, dimension: int, repeat: int, insecure: bool) -> dict[str, Any]:
    """One client's encryption of ``dimension`` values with and without proofs,
    and the bytes the proofs (and the signature) add to its input."""
    kw: dict[str, Any] = {"insecure_allow_small_key_for_tests": True} if insecure else {}
    pk = keypair[0]
    layout = paillier.PackingLayout.create(pk, dimension=dimension, clip=1.0, value_bits=16,
                                           capacity=64, **kw)
    x = np.random.default_rng(0).uniform(-1, 1, dimension)
    plain = best_of(lambda: paillier.encrypt(pk, layout, x, **kw), repeat)
    proved = best_of(lambda: popk.encrypt_with_batchable_proofs(pk, layout, x,
                                                                context=b"bench", **kw),
                     repeat)
    vec, proofs = popk.encrypt_with_batchable_proofs(pk, layout, x, context=b"bench", **kw)
    payload, proof_bytes = len(vec.to_bytes()), len(proofs.to_bytes())
    return {"dimension": dimension, "ciphertexts": layout.ciphertexts,
            "encrypt_s": plain, "encrypt_and_prove_s": proved,
            "with / without proofs": proved / plain, "payload_bytes": payload,
            "proof_bytes": proof_bytes, "proof / payload": proof_bytes / payload}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.paillier_malicious",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--bits", type=int, default=2048, help="key size (default 2048)")
    ap.add_argument("--clients", type=int, nargs="+", default=[5, 10, 20])
    ap.add_argument("--dimension", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true",
                    help="1024-bit key under the test-only flag, 3 and 5 clients, 200 values")
    ap.add_argument("--out", default=None, help="JSON output path")
    args = ap.parse_args(argv)
    insecure = args.quick
    bits = 1024 if args.quick else args.bits
    clients = [3, 5] if args.quick else args.clients
    dimension = 200 if args.quick else args.dimension
    keypair = tp.generate_keypair(
        bits, **({"insecure_allow_small_key_for_tests": True} if insecure else {}))
    client = measure_client(keypair, dimension, args.repeat, insecure)
    print(f"one client, {bits}-bit key, {dimension} values: encryption with and without "
          "proofs of plaintext knowledge")
    print(table([client]))
    rows = [measure(keypair, n, dimension, args.repeat, insecure) for n in clients]
    print(f"threshold Paillier, {bits}-bit key, 2-of-3 committee, one decryptor's work")
    print(table(rows))
    write_json("paillier_malicious", {"bits": bits, "client": client, "rows": rows}, args.out)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
