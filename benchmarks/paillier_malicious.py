"""What the malicious-aggregator mode of threshold Paillier costs a decryptor.

Side by side, on one dealt key and the same inputs, per committee member:

* semi-honest: the decryption request is the aggregator's product
  (``EncryptedSum``); the decryptor parses it and partially decrypts it;
* malicious: the request carries every included input with its Ed25519
  signature and its proofs of plaintext knowledge (``SignedInputs``); the
  decryptor verifies every signature and every proof, parses every vector,
  multiplies them mod n^2 itself, then partially decrypts the product.

Reported: the encoded request's bytes in both modes, the decryptor's
check-and-multiply time (proofs included) and its partial-decryption time,
the verification of one client's proofs against that partial decryption,
and, per client, encryption with and without proofs and the bytes the
proofs add to an input (best of ``--repeat`` runs, wall clock, one
process), with the ratios. Side by side, the same clients' proofs in
committed form checked by one batched verification
(:func:`secagg.paillier.popk.verify_batch`) against checking each proof
(:func:`secagg.paillier.popk.verify_vector`), and the bytes of each form. Run with
``python -m benchmarks.paillier_malicious [--bits 2048] [--clients 5 10 20]
[--dimension 1000]``; ``--quick`` uses a 1024-bit key under the test-only
flag (for a smoke run, not for figures).
"""

from __future__ import annotations

import argparse
from typing import Any

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
    row["check_and_multiply_s"] = best_of(
        lambda: _signed_product(cfg, layout, pk, msg, insecure), repeat)
    product, _ = _signed_product(cfg, layout, pk, msg, insecure)
    share = member._share
    row["partial_mal_s"] = best_of(lambda: tp.partial_decrypt(
        share, product, context=decryption_context(cfg)), repeat)
    first = msg.inputs[0]
    one = open_vector(first.payload, pk, insecure)
    proofs = popk.ProofVector.from_bytes(first.proofs, pk, count=len(one.ciphertexts),
                                         insecure_allow_small_key_for_tests=insecure)
    row["verify_one_client_s"] = best_of(lambda: popk.verify_vector(
        one, proofs, context=ps.proof_context(cfg, first.sender)), repeat)
    vectors = [open_vector(i.payload, pk, insecure) for i in msg.inputs]
    compact = [popk.ProofVector.from_bytes(i.proofs, pk, count=len(v.ciphertexts),
                                           insecure_allow_small_key_for_tests=insecure)
               for i, v in zip(msg.inputs, vectors, strict=True)]
    contexts = [ps.proof_context(cfg, i.sender) for i in msg.inputs]

    def verify_each() -> None:
        for v, p, c in zip(vectors, compact, contexts, strict=True):
            popk.verify_vector(v, p, context=c)

    row["verify_all_each_s"] = best_of(verify_each, repeat)
    # the same clients' encryptions with proofs in committed form (fresh vectors)
    kw: dict[str, Any] = {"insecure_allow_small_key_for_tests": True} if insecure else {}
    batch_items = []
    x = np.random.default_rng(1).uniform(-1, 1, dimension)
    for c in contexts:
        v, bp = popk.encrypt_with_batchable_proofs(pk, layout, x, context=c, **kw)
        batch_items.append((v, bp, c))
    row["verify_all_batched_s"] = best_of(lambda: popk.verify_batch(batch_items), repeat)
    row["each / batched"] = row["verify_all_each_s"] / row["verify_all_batched_s"]
    row["proof_bytes_compact"] = len(msg.inputs[0].proofs)
    row["proof_bytes_committed"] = len(batch_items[0][1].to_bytes())
    row["check / partial"] = row["check_and_multiply_s"] / row["partial_mal_s"]
    row["verify 1 client / partial"] = row["verify_one_client_s"] / row["partial_mal_s"]
    row["batched all / partial"] = row["verify_all_batched_s"] / row["partial_mal_s"]
    row["bytes mal / semi"] = row["request_bytes_mal"] / row["request_bytes_semi"]
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
    proved = best_of(lambda: popk.encrypt_with_proofs(pk, layout, x, context=b"bench", **kw),
                     repeat)
    vec, proofs = popk.encrypt_with_proofs(pk, layout, x, context=b"bench", **kw)
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
