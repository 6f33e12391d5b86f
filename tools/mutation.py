# ruff: noqa: E501  (mutants quote source lines exactly)
"""Mutation testing of the security-critical code, with no extra dependency.

Each mutant is a plausible one-line bug (an operator swapped, a bound off by
one, a check dropped) written as an exact source edit. The driver copies the
checkout to a temporary directory once, checks that the unmutated tests pass
there, then plants one mutant at a time in the copy and runs the test files
that exercise its module (``pytest -x``, with a timeout). A mutant is
*killed* when those tests fail or time out and *survives* when they pass.
Mutants marked ``equivalent`` (they cannot change observable behaviour; the
reason is written next to them) are listed but neither run nor counted.

Run from the checkout's root::

    .venv/bin/python tools/mutation.py                  # every target
    .venv/bin/python tools/mutation.py --target shamir  # one target (repeatable)
    .venv/bin/python tools/mutation.py --list           # the mutants, not run

It prints killed/survived per target, the score ``killed / (killed +
survived)`` and every survivor, and exits 1 if the score is below
``--min-score`` (default 0), 2 if a mutant no longer matches the source (the
list must follow the code) or the unmutated tests fail.

Targets cover the primitives (``secagg/``), the SecAgg protocol
(``sa-*``), the Paillier sum's decrypting parties, the DP ledgers,
budget checks, exact discrete samplers and distributed-DP accounting
(``dp-*``) and the testing kit's checks (``kit``); each runs
only the test files that exercise its modules. ``--match TEXT`` runs only
the mutants whose description contains TEXT (to recheck survivors). To
cover another module, add a :class:`Target` with its test files and mutants
to :data:`TARGETS`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Directories never copied (environments, caches, version control, outputs).
_SKIP = (".venv", ".git", "runs", "__pycache__", ".mypy_cache", ".pytest_cache",
         ".ruff_cache", ".hypothesis", "*.egg-info", "node_modules")


@dataclass(frozen=True)
class Mutant:
    """One planted bug: replace the exact text ``find`` (which must occur
    exactly once in ``path``) with ``replace``."""

    path: str
    find: str
    replace: str
    why: str
    #: Non-empty: why no test can tell this mutant from the original.
    equivalent: str = ""

    @property
    def label(self) -> str:
        return f"{self.path}: {self.why}"


@dataclass(frozen=True)
class Target:
    """A module (or group of modules), the tests that exercise it, its mutants."""

    name: str
    tests: tuple[str, ...]
    mutants: tuple[Mutant, ...]


@dataclass
class Outcome:
    mutant: Mutant
    status: str  # "killed", "survived", "timeout", "equivalent"
    seconds: float = 0.0
    detail: str = ""


@dataclass
class Report:
    outcomes: dict[str, list[Outcome]] = field(default_factory=dict)

    def counts(self, name: str | None = None) -> dict[str, int]:
        groups = self.outcomes.values() if name is None else [self.outcomes[name]]
        c = {"killed": 0, "timeout": 0, "survived": 0, "equivalent": 0}
        for group in groups:
            for o in group:
                c[o.status] += 1
        return c

    def score(self, name: str | None = None) -> float:
        """Killed (timeouts included) over killed plus survived; 1.0 if none ran."""
        c = self.counts(name)
        ran = c["killed"] + c["timeout"] + c["survived"]
        return 1.0 if ran == 0 else (c["killed"] + c["timeout"]) / ran

    def survivors(self) -> list[Outcome]:
        return [o for g in self.outcomes.values() for o in g if o.status == "survived"]

    def to_json(self) -> dict[str, object]:
        return {
            "score": self.score(),
            "targets": {
                name: {**self.counts(name), "score": self.score(name),
                       "mutants": [{"path": o.mutant.path, "why": o.mutant.why,
                                    "status": o.status, "seconds": round(o.seconds, 2),
                                    **({"equivalent": o.mutant.equivalent}
                                       if o.mutant.equivalent else {})}
                                   for o in group]}
                for name, group in self.outcomes.items()
            },
        }


class MutantRot(Exception):
    """A mutant's text no longer occurs exactly once in its file."""


def _m(path: str) -> _Builder:
    return _Builder(path)


class _Builder:
    """Short-hand for many mutants of one file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.out: list[Mutant] = []

    def __call__(self, find: str, replace: str, why: str, equivalent: str = "") -> _Builder:
        self.out.append(Mutant(self.path, find, replace, why, equivalent))
        return self


# -- the mutants ---------------------------------------------------------------------

_enc = (
    _m("secagg/encoding.py")
    ("        if max_summands * max_int >= half:",
     "        if max_summands * max_int > half:",
     "headroom: >= m/2 weakened to > m/2")
    ("        if max_summands * max_int >= half:",
     "        if max_summands * max_int >= 2 * half:",
     "headroom: half the modulus weakened to the full modulus")
    ("        if max_int == 0:",
     "        if max_int < 0:",
     "a clip that rounds to 0 accepted")
    ("        ) >= half:\n            break",
     "        ) > half:\n            break",
     "frac_bits_for: >= m/2 weakened to > m/2")
    ("    for f in range(MAX_FRAC_BITS + 1):",
     "    for f in range(MAX_FRAC_BITS):",
     "frac_bits_for: largest precision off by one")
    ("    if _max_int(clip, 2.0**best, stochastic_rounding) == 0:",
     "    if _max_int(clip, 2.0**best, stochastic_rounding) < 0:",
     "frac_bits_for returns a precision that rounds clip to 0")
    ("        xs = np.multiply(x, self.scale, dtype=np.float64)  # one pass, new buffer",
     "        xs = np.multiply(x, self.scale).astype(np.float64)",
     "scaling in the input's float width (float16 overflows)")
    ("    return int(np.ceil(v) if stochastic_rounding else np.rint(v))",
     "    return int(np.rint(v))",
     "max_int ignores stochastic rounding's ceiling")
    ("        if lo < -self.clip or hi > self.clip:",
     "        if lo < -self.clip and hi > self.clip:",
     "clip only when both ends are out of range")
    ("            over = np.abs(x, dtype=np.float64) > self.clip",
     "            over = np.abs(x) > self.clip",
     "clip comparison in the input's float width")
    ("            over = np.abs(x, dtype=np.float64) > self.clip",
     "            over = np.abs(x, dtype=np.float64) >= self.clip",
     "a value equal to the clip counted as clipped")
    ("            if self.on_clip == \"raise\":",
     "            if self.on_clip == \"never\":",
     "on_clip='raise' ignored")
    ("            np.clip(xs, -self.clip * self.scale, self.clip * self.scale, out=xs)",
     "            pass",
     "out-of-range values not clipped")
    ("            uf *= 1.0 / (1 << 53)",
     "            uf *= 1.0 / (1 << 52)",
     "stochastic rounding uniform on [0, 2)")
    ("            uf = (u >> np.uint64(11)).astype(np.float64)",
     "            uf = (u >> np.uint64(12)).astype(np.float64)",
     "stochastic rounding uniform on [0, 1/2)")
    ("            fl += uf < xs",
     "            fl += uf <= xs",
     "stochastic rounding: < becomes <=",
     "uf == xs has probability 2^-53 per element for a 53-bit uniform uf: the "
     "distributions differ by at most 2^-53, beyond any test")
    ("            q[q < 0] += self.modulus",
     "            q[q <= 0] += self.modulus",
     "odd modulus: zero encoded as m")
    ("        if not (np.isfinite(lo) and np.isfinite(hi)):",
     "        if not (np.isfinite(lo) or np.isfinite(hi)):",
     "an infinity at one end of the range accepted")
    ("        if x.dtype not in _FLOATS:",
     "        if x.dtype.kind not in \"fiub\":",
     "integer and bool arrays accepted")
    ("            if lo < -limit or hi > limit:",
     "            if lo < -limit and hi > limit:",
     "overflow check needs both ends past the limit")
    ("            if lo < -limit or hi > limit:",
     "            if lo < -limit or hi >= limit:",
     "overflow check refuses a sum exactly at the limit")
    ("        limit = n * self.max_int",
     "        limit = (n + 1) * self.max_int",
     "overflow check allows one summand too many")
    ("        s[s >= self.modulus] -= np.uint64(self.modulus)",
     "        s[s > self.modulus] -= np.uint64(self.modulus)",
     "odd modulus: a sum equal to m not reduced")
    ("        if not self.power_of_two and v.size and int(v.max()) >= self.modulus:",
     "        if not self.power_of_two and v.size and int(v.max()) > self.modulus:",
     "residue equal to the modulus accepted")
    ("        if not isinstance(v, np.ndarray) or v.dtype != self.dtype or v.ndim != 1:",
     "        if not isinstance(v, np.ndarray) or v.dtype != self.dtype:",
     "2-D encoded arrays accepted")
    ("        signed[v > np.uint64(self.modulus // 2)] -= self.modulus",
     "        signed[v >= np.uint64(self.modulus // 2)] -= self.modulus",
     "odd modulus: residue (m-1)/2 decoded as negative",
     "(m-1)/2 is past every honest sum (N * max_int < m/2 at construction), and the "
     "overflow check refuses it as +(m-1)/2 or -(m+1)/2 alike; only the error text differs")
    ("        check_int(\"n_summands\", n, 0, self.max_summands)\n"
     "        signed = self._signed(v)\n"
     "        self._check_limit(signed, n)\n        return signed.astype(np.int64)",
     "        check_int(\"n_summands\", n, 0, None)\n        signed = self._signed(v)\n"
     "        self._check_limit(signed, n)\n        return signed.astype(np.int64)",
     "decode_int accepts more summands than the headroom")
    ("    per = (1.0 if self.stochastic_rounding else 0.5) / self.scale",
     "    per = (0.5 if self.stochastic_rounding else 1.0) / self.scale",
     "error bounds of the two roundings swapped")
    ("    if not np.isfinite(c) or c <= 0:",
     "    if not np.isfinite(c) or c < 0:",
     "clip = 0 accepted")
    ("        acc: npt.NDArray[np.unsignedinteger] = first.copy()",
     "        acc: npt.NDArray[np.unsignedinteger] = np.zeros_like(first)",
     "sum drops its first vector")
).out

_prg = (
    _m("secagg/prg.py")
    ("    return hashlib.sha256(_DOMAIN + label).digest()[:8] + bytes(8)",
     "    return hashlib.sha256(_DOMAIN).digest()[:8] + bytes(8)",
     "labels collapse into one stream")
    ("    return hashlib.sha256(_DOMAIN + label).digest()[:8] + bytes(8)",
     "    return hashlib.sha256(_DOMAIN + label).digest()[:16]",
     "labels no longer own 2^64 counter blocks each")
    ("    if subtract:\n        np.subtract(out, mask, out=out)",
     "    if not subtract:\n        np.subtract(out, mask, out=out)",
     "expand_into's add and subtract swapped")
    ("    if not out.flags.writeable:",
     "    if False:",
     "read-only arrays reach numpy")
    ("    counter_block = check_bytes(\"counter_block\", counter_block, 16)",
     "    counter_block = check_bytes(\"counter_block\", counter_block)",
     "keystream's counter block length unchecked")
    ("    if type(seed) is not bytes or len(seed) != SEED_BYTES:",
     "    if type(seed) is not bytes:",
     "seed length unchecked")
    ("            m = min(_CHUNK, nbytes - off)",
     "            m = min(_CHUNK, nbytes - off - 1)",
     "last byte of a chunked stream not written")
    ("    if dt not in _LE:",
     "    if dt is None:",
     "unsupported dtypes not refused")
    ("    return os.urandom(SEED_BYTES)",
     "    return bytes(SEED_BYTES)",
     "fresh seeds are all zero")
    ("    label: bytes = b\"\",\n    *,\n    subtract: bool = False,\n) -> None:",
     "    label: bytes = b\"\",\n    *,\n    subtract: bool = True,\n) -> None:",
     "expand_into subtracts by default")
).out

_shamir = (
    _m("secagg/shamir.py")
    ("        if not 0 <= self.value < PRIME:",
     "        if not 0 <= self.value <= PRIME:",
     "share value p accepted")
    ("        if isinstance(self.value, bool) or not isinstance(self.value, int):",
     "        if False:",
     "non-integer share values accepted")
    ("        if index == 0 or threshold == 0 or value >= PRIME:",
     "        if index == 0 or threshold == 0 or value > PRIME:",
     "decoded value p reaches the constructor (ParameterError, not ProtocolError)")
    ("        if index == 0 or threshold == 0 or value >= PRIME:",
     "        if threshold == 0 or value >= PRIME:",
     "decoded index 0 not refused by the codec")
    ("        if version != _VERSION:",
     "        if version > _VERSION + 1:",
     "share version 2 accepted")
    ("    if t > n:",
     "    if t >= n:",
     "threshold t = n refused")
    ("        coeffs = [gmpy2.mpz(_secrets.randbelow(PRIME)) for _ in range(t - 1)]",
     "        coeffs = [gmpy2.mpz(_secrets.randbelow(PRIME)) for _ in range(t - 2)]",
     "polynomial of degree t-2: t-1 shares reveal the secret")
    ("        coeffs = [gmpy2.mpz(_secrets.randbelow(PRIME)) for _ in range(t - 1)]",
     "        coeffs = [gmpy2.mpz(_secrets.randbelow(2**64)) for _ in range(t - 1)]",
     "64-bit coefficients")
    ("                acc = (acc + c) * x % _P",
     "                acc = (acc + c) * x",
     "Horner step without reduction",
     "the share value is reduced mod p right after the loop, so only intermediate "
     "sizes change, never a share")
    ("            shares.append(Share(x, t, int((acc + c0) % _P)))",
     "            shares.append(Share(x, t, int(acc + c0)))",
     "share value not reduced mod p")
    ("    ds = [gmpy2.mpz((x - xi) * d) % _P for xi, d in zip(xs, dens, strict=True)]",
     "    ds = [gmpy2.mpz((xi - x) * d) % _P for xi, d in zip(xs, dens, strict=True)]",
     "Lagrange denominators negated")
    ("    n_all = gmpy2.mpz(math.prod(x - xm for xm in xs)) % _P",
     "    n_all = gmpy2.mpz(math.prod(xm - x for xm in xs)) % _P",
     "Lagrange numerator sign")
    ("    for i in range(len(ds) - 1, -1, -1):",
     "    for i in range(len(ds) - 1, 0, -1):",
     "batch inversion skips the first coefficient")
    ("xi - xj for j, xj in enumerate(xs) if j != i)",
     "xi - xj for j, xj in enumerate(xs) if j < i)",
     "denominators over half the other indices")
    ("    if len(set(idx)) != len(idx):\n        dup = sorted(",
     "    if len(set(idx[:t])) != len(idx[:t]):\n        dup = sorted(",
     "duplicates checked only among the first t shares")
    ("    if len(mixed) > 1:",
     "    if len(mixed) > 2:",
     "two different thresholds accepted")
    ("    if len(shares) < t:",
     "    if len(shares) <= t:",
     "exactly t shares refused")
    ("    if len(shares) < t:",
     "    if len(shares) < t - 1:",
     "t-1 shares accepted")
    ("    return ordered[:t], ordered[t:]",
     "    return ordered[:t], ordered[t + 1:]",
     "the first extra share never checked")
    ("    if v >= 1 << (8 * SECRET_BYTES):",
     "    if v > 1 << (8 * SECRET_BYTES):",
     "value 2^256 reaches int.to_bytes")
    ("    if v >= 1 << (8 * SECRET_BYTES):",
     "    if v >= PRIME:",
     "secret-range check dropped ([2^256, p) reaches int.to_bytes)")
    ("        if _interpolate(memo.at(xs, e.index), chosen) != e.value:",
     "        if False:",
     "extra shares not checked")
    ("        coeffs = self._at.get((xs, x))",
     "        coeffs = self._at.get((xs, 0)) or self._at.get((xs, x))",
     "extra-share coefficients cached under the wrong point",
     "nothing is ever stored under point 0 (extra shares have indices >= 1), so the "
     "first lookup always misses")
    ("    if len(set(idx)) != len(idx):\n        raise ParameterError(f\"duplicate share",
     "    if False:\n        raise ParameterError(f\"duplicate share",
     "lagrange_coefficients accepts duplicate indices")
).out

_kex = (
    _m("secagg/kex.py")
    ("    lo, hi = sorted((a, b))",
     "    lo, hi = a, b",
     "context not symmetric in the two ids")
    ("    if a == b:",
     "    if a is None:",
     "a party paired with itself accepted")
    ("    return hkdf(shared, salt=None, info=_DOMAIN + check_bytes(\"info\", info), length=32)",
     "    return hkdf(shared, salt=None, info=check_bytes(\"info\", info), length=32)",
     "key-derivation domain dropped")
    ("        shared = private._key.exchange(peer._key)\n    except ValueError as exc:",
     "        shared = private._key.exchange(peer._key)\n    except TypeError as exc:",
     "low-order point error escapes as ValueError")
    ("    return struct.pack(\">H\", len(p)) + p + struct.pack(\">QII\", round_id, lo, hi)",
     "    return p + struct.pack(\">QII\", round_id, lo, hi)",
     "purpose length prefix dropped")
    ("        data = check_bytes(\"X25519 public key\", data, KEY_BYTES)",
     "        data = check_bytes(\"X25519 public key\", data)",
     "public key length unchecked")
    ("    check_int(\"round_id\", round_id, 0, 2**64 - 1)",
     "    check_int(\"round_id\", round_id, 0, 2**64)",
     "round id 2^64 reaches struct.pack")
    ("    length = check_int(\"length\", length, 1, 255 * 32)",
     "    length = check_int(\"length\", length, 1, 255 * 32 + 1)",
     "HKDF length past RFC 5869's limit reaches cryptography")
    ("        return isinstance(other, PublicKey) and self.to_bytes() == other.to_bytes()",
     "        return isinstance(other, PublicKey)",
     "all public keys compare equal")
    ("        return f\"PrivateKey(public={self.public_key().to_bytes().hex()[:16]}...)\"",
     "        return f\"PrivateKey(secret={self.to_bytes().hex()[:16]}...)\"",
     "repr shows the private key")
    ("    if not 1 <= len(p) <= 0xFFFF:",
     "    if not 1 <= len(p) <= 0x10000:",
     "purpose of 65536 bytes reaches struct.pack")
).out

_aead = (
    _m("secagg/aead.py")
    ("    nonce = os.urandom(NONCE_BYTES)",
     "    nonce = bytes(NONCE_BYTES)",
     "fixed nonce")
    ("    if len(sealed) < OVERHEAD:",
     "    if len(sealed) < NONCE_BYTES:",
     "short input reaches AES-GCM")
    ("    if len(sealed) < OVERHEAD:",
     "    if len(sealed) < 0:",
     "no length check before AES-GCM")
    ("sealed[NONCE_BYTES:], associated_data)",
     "sealed[NONCE_BYTES:], b\"\")",
     "open ignores the associated data")
    ("    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)",
     "    return nonce + AESGCM(key).encrypt(nonce, plaintext, b\"\")",
     "seal ignores the associated data")
    ("    if len(plaintext) > MAX_PLAINTEXT_BYTES:",
     "    if len(plaintext) > MAX_PLAINTEXT_BYTES + 1:",
     "plaintext one byte over the limit reaches AES-GCM")
    ("    if len(sealed) > OVERHEAD + MAX_PLAINTEXT_BYTES:",
     "    if len(sealed) > OVERHEAD + MAX_PLAINTEXT_BYTES + 1:",
     "sealed message one byte over the limit reaches AES-GCM")
).out

_sign = (
    _m("secagg/sign.py")
    ("        if len(signature) != SIGNATURE_BYTES:",
     "        if len(signature) > SIGNATURE_BYTES:",
     "short signatures reach Ed25519")
    ("            self._key.verify(signature, check_bytes(\"message\", message))\n"
     "        except InvalidSignature:",
     "            self._key.verify(signature, check_bytes(\"message\", message))\n"
     "        except ValueError:",
     "InvalidSignature escapes")
    ("        return isinstance(other, VerifyKey) and self.to_bytes() == other.to_bytes()",
     "        return isinstance(other, VerifyKey)",
     "all verify keys compare equal")
    ("        return f\"SigningKey(public={self.verify_key().to_bytes().hex()[:16]}...)\"",
     "        return f\"SigningKey(secret={self.to_bytes().hex()[:16]}...)\"",
     "repr shows the signing key")
).out

_util = (
    _m("secagg/_util.py")
    ("    if isinstance(value, bool) or not isinstance(value, int):",
     "    if not isinstance(value, int):",
     "True and False accepted as integers")
    ("    if value < lo or (hi is not None and value > hi):",
     "    if value < lo or (hi is not None and value > hi + 1):",
     "upper bounds off by one")
    ("    if value < lo or (hi is not None and value > hi):",
     "    if value < lo - 1 or (hi is not None and value > hi):",
     "lower bounds off by one")
    ("    if length is not None and len(b) != length:",
     "    if length is not None and len(b) < length:",
     "over-long byte strings accepted")
).out

# -- protocols/secagg ----------------------------------------------------------------

#: The protocol's tests: fast unit files first (``pytest -x`` stops at the first failure).
_SA_TESTS = ("tests/test_secagg_config.py", "tests/test_secagg_codec.py",
             "tests/test_secagg_checks.py", "tests/test_secagg_adversarial.py",
             "tests/test_secagg_attacks.py", "tests/test_secagg_protocol.py",
             "tests/test_mutation_kills_secagg.py")

_sa_binding = (
    _m("protocols/secagg/binding.py")
    ("    return b\"secagg/\" + what + b\"/v1\" + config.digest + struct.pack(\">Q\", config.session_id)",
     "    return b\"secagg/\" + what + b\"/v1\" + struct.pack(\">Q\", config.session_id)",
     "configuration digest dropped from associated data, labels and signed payloads")
    ("    return b\"secagg/\" + what + b\"/v1\" + config.digest + struct.pack(\">Q\", config.session_id)",
     "    return b\"secagg/\" + what + b\"/v1\" + config.digest",
     "session id dropped from associated data, labels and signed payloads",
     "the configuration digest, still in every context, is SHA-256 of an encoding that "
     "starts with the session id (SecAggConfig.to_bytes), so the id stays bound")
    ("    return kex.context(f\"secagg/{purpose}/{config.digest.hex()}\", config.session_id,",
     "    return kex.context(f\"secagg/{purpose}\", config.session_id,",
     "configuration digest dropped from the key-derivation info")
    ("    return kex.context(f\"secagg/{purpose}/{config.digest.hex()}\", config.session_id,",
     "    return kex.context(f\"secagg/{config.digest.hex()}\", config.session_id,",
     "key purpose dropped: channel and mask keys coincide")
    ("        \">BII\", ROUNDS.index(\"share_keys\"), _ix(config, sender), _ix(config, receiver)",
     "        \">BII\", ROUNDS.index(\"share_keys\"), _ix(config, sender), 0",
     "receiver dropped from the share ciphertext's associated data",
     "the AEAD key is the pairwise key of sender and receiver, so only the two "
     "directions of one pair share it; those differ in the sender, still in the "
     "associated data, and the plaintext repeats both indices, which the receiver checks")
    ("        \">BII\", ROUNDS.index(\"share_keys\"), _ix(config, sender), _ix(config, receiver)",
     "        \">BII\", ROUNDS.index(\"share_keys\"), 0, _ix(config, receiver)",
     "sender dropped from the share ciphertext's associated data")
    ("    return _head(config, b\"mask/\" + kind.encode())",
     "    return _head(config, b\"mask/\")",
     "self-mask and pairwise-mask labels collapse into one")
    ("                                                            _ix(config, client))\n"
     "            + c_public + s_public)",
     "                                                            _ix(config, client))\n"
     "            + c_public)",
     "mask public key dropped from the signed advertisement")
    ("                                                            _ix(config, client))\n"
     "            + c_public + s_public)",
     "                                                            0)\n"
     "            + c_public + s_public)",
     "client dropped from the signed advertisement",
     "the signature must verify under the registry key of the client it is shown "
     "for, and the configuration refuses a registry holding one key twice, so the "
     "signer is bound by its key")
    ("    return (_head(config, b\"consistency\") + session",
     "    return (_head(config, b\"consistency\")",
     "session binding dropped from the consistency signature")
    ("            + struct.pack(f\">BI{len(ids)}I\", ROUNDS.index(\"consistency\"), len(ids), *ids))",
     "            + struct.pack(\">BI\", ROUNDS.index(\"consistency\"), len(ids)))",
     "survivor ids dropped from the consistency signature (only their count signed)")
).out

_sa_fresh = (
    _m("protocols/secagg/freshness.py")
    ("    return hashlib.sha256(b\"secagg/roster-entry/v1\" + c_public + s_public).digest()",
     "    return hashlib.sha256(b\"secagg/roster-entry/v1\" + c_public).digest()",
     "roster entry omits the mask public key")
    ("        h.update(struct.pack(\">I\", ix) + entry)",
     "        h.update(struct.pack(\">I\", ix))",
     "session binding omits the roster entries (not fresh)")
    ("    h = hashlib.sha256(b\"secagg/session-binding/v1\" + config.digest)",
     "    h = hashlib.sha256(b\"secagg/session-binding/v1\")",
     "session binding omits the configuration digest")
)
_sa_fresh = _sa_fresh.out

_sa_keycheck = (
    _m("protocols/secagg/keycheck.py")
    ("    return u % _P in _SMALL_ORDER_U",
     "    return u in _SMALL_ORDER_U",
     "low-order u-coordinates not reduced mod p (u = p accepted)")
    ("    u = int.from_bytes(public, \"little\") & ((1 << 255) - 1)",
     "    u = int.from_bytes(public, \"little\")",
     "top bit of the u-coordinate not masked")
    ("    0, 1, _P - 1,\n",
     "    0, _P - 1,\n",
     "the point of order 1 (u = 1) not refused")
).out

_sa_partition = (
    _m("protocols/secagg/partition.py")
    ("    if config.quorum is None or config.quorum < q:",
     "    if config.quorum is None or config.quorum < q - 1:",
     "quorum one below floor((n + c)/2) + 1 accepted")
    ("    if config.graph_seed == bytes(32):",
     "    if False:",
     "all-zero ring seed accepted")
    ("    if bits < target.security_bits:\n        raise ParameterError(\n            f\"degree",
     "    if False:\n        raise ParameterError(\n            f\"degree",
     "degree/threshold security check dropped")
    ("        if bits < target.security_bits:\n            raise ParameterError(\n"
     "                f\"threshold {config.threshold} does not exceed",
     "        if False:\n            raise ParameterError(\n"
     "                f\"threshold {config.threshold} does not exceed",
     "complete graph: threshold <= corrupt clients accepted")
    ("    thin = (cs[h:h + n] - cs[:n]) <= bound",
     "    thin = (cs[h:h + n] - cs[:n]) < bound",
     "a window holding exactly the bound not counted as thin")
    ("    if found.any():",
     "    if found.all():",
     "partition refused only when every thin window splits the ring")
).out

_sa_config = (
    _m("protocols/secagg/config.py")
    ("    return (n + c) // 2 + 1",
     "    return (n + c) // 2",
     "consistency quorum one too low: two quorums need not share an honest client")
    ("            if self.quorum is None or not n // 2 + 1 <= self.quorum <= n:",
     "            if self.quorum is None or not n // 2 <= self.quorum <= n:",
     "a quorum of n/2 accepted (two quorums may be disjoint)")
    ("            if len({k.to_bytes() for k in reg.values()}) != n:",
     "            if False:",
     "one identity key registered for two clients")
    ("            2 <= self.threshold <= holders",
     "            1 <= self.threshold <= holders",
     "threshold 1 accepted")
    ("        w.u32(self.quorum or 0).raw(self.graph_seed).u32(self.n)",
     "        w.u32(self.quorum or 0).u32(self.n)",
     "ring seed not bound by the digest")
    ("            for i in self.client_ids:\n                w.raw(self.registry[i].to_bytes())",
     "            pass",
     "identity registry not bound by the digest")
).out

_sa_messages = (
    _m("protocols/secagg/messages.py")
    ("    _need(session == config.session_id,",
     "    _need(True,",
     "messages of another session decoded")
    ("    _need(r.raw(32) == config.digest, \"message bound to another configuration (digest)\")",
     "    r.raw(32)",
     "messages of another configuration decoded")
    ("        _need(b > a, f\"{what}: ids must be strictly increasing (duplicate or unordered {b})\")",
     "        _need(b >= a, f\"{what}: ids must be strictly increasing (duplicate or unordered {b})\")",
     "a list naming one client twice decoded")
    ("        _need(r_ix == _SERVER_INDEX, f\"{name} addressed to index {r_ix}, not the server\")",
     "        pass",
     "a client message addressed to another client decoded")
    ("        _need(sig > 0 or n == 0, \"signatures in an UnmaskRequest of the semi-honest mode\")",
     "        pass",
     "signatures in a semi-honest unmask request decoded")
).out

_sa_client = (
    _m("protocols/secagg/client.py")
    ("            for e in msg.keys:\n                cfg.registry[e.client].verify(",
     "            for e in msg.keys[:0]:\n                cfg.registry[e.client].verify(",
     "advertisement signatures never verified")
    ("            for c, sig in msg.signatures:\n                cfg.registry[c].verify(sig, payload)",
     "            for c, sig in msg.signatures[:0]:\n                cfg.registry[c].verify(sig, payload)",
     "consistency signatures never verified")
    ("            if len(signers) < cfg.quorum:",
     "            if len(signers) < cfg.quorum - 1:",
     "unmask request with quorum-1 signatures answered")
    ("            if not set(signers) <= u3:",
     "            if False:",
     "signatures from outside the survivor set accepted")
    ("            if surv != u3 & self._neighbourhood or drop & u3:",
     "            if drop & u3:",
     "unmask survivors differ from the signed set")
    ("            if surv != u3 & self._neighbourhood or drop & u3:",
     "            if surv != u3 & self._neighbourhood:",
     "a signed survivor asked for as a dropout",
     "redundant: dropouts must be neighbours (checked first) and the survivors must "
     "equal the signed set's neighbours, so a signed survivor among the dropouts is "
     "named as both, which the earlier both-shares check refuses")
    ("        if both:\n            raise ProtocolError(",
     "        if False:\n            raise ProtocolError(",
     "both shares of one neighbour revealed (semi-honest)")
    ("        if len(u3) < cfg.quorum:",
     "        if len(u3) < cfg.quorum - 1:",
     "survivor set one below the quorum signed")
    ("        partition.check_survivors(cfg, u3, self._window_bound)",
     "        pass",
     "survivor set that cuts the ring signed")
    ("        if roster.get(self.id) != mine:",
     "        if self.id not in roster:",
     "roster with this client's keys of another run accepted (replay)")
    ("            if v in roster and roster[v] != freshness.roster_entry(",
     "            if False and roster[v] != freshness.roster_entry(",
     "roster with other keys for a neighbour accepted")
    ("        missing = set(msg.survivors) - set(roster)\n        if missing:",
     "        missing = set(msg.survivors) - set(roster)\n        if False:",
     "survivors missing from the roster accepted")
    ("                if sh.index != idx or sh.threshold != cfg.threshold:",
     "                if sh.index != idx:",
     "the threshold recorded in a received share unchecked")
    ("                if sh.index != idx or sh.threshold != cfg.threshold:",
     "                if sh.threshold != cfg.threshold:",
     "the index of a received share unchecked")
    ("            if (owner, holder) != (cfg.index_of(v), cfg.index_of(self.id)):",
     "            if owner != cfg.index_of(v):",
     "share plaintext's holder index unchecked")
    ("        if count < t:\n            raise AbortError(\n                f\"client {self.id}: only",
     "        if count < t - 1:\n            raise AbortError(\n                f\"client {self.id}: only",
     "client's neighbourhood threshold off by one")
    ("        if len(set(ids)) != len(ids):",
     "        if False:",
     "lists naming one client twice accepted (counts over duplicates)")
    ("                e.c_public == e.s_public or uses[e.c_public] > 1 or uses[e.s_public] > 1",
     "                e.c_public == e.s_public or uses[e.c_public] > 1",
     "a neighbour showing a copied mask key not excluded")
    ("        self._check_size(len(ids) - len(excluded), \"advertised usable keys\")",
     "        self._check_size(len(ids), \"advertised usable keys\")",
     "excluded neighbours counted towards the threshold")
    ("            prg.expand_into(y, seed, pair_label, subtract=self.id > v)",
     "            prg.expand_into(y, seed, pair_label, subtract=self.id < v)",
     "pairwise mask signs flipped")
    ("        if self.id not in u3:",
     "        if False:",
     "survivor set omitting this client signed")
).out

_sa_server = (
    _m("protocols/secagg/server.py")
    ("        if len(live) < t:\n            raise AbortError(f\"{len(live)} clients {what}, threshold {t}\")",
     "        if len(live) < t - 1:\n            raise AbortError(f\"{len(live)} clients {what}, threshold {t}\")",
     "server: t-1 live clients accepted",
     "the per-client check right after it still aborts: with t-1 live clients "
     "(t-1 >= 1) every live client has at most t-1 live neighbourhood members, "
     "and with none the weakened check itself aborts; only the message differs")
    ("            if k < t:\n                raise AbortError(f\"client {u} has",
     "            if k < t - 1:\n                raise AbortError(f\"client {u} has",
     "server: a neighbourhood of t-1 accepted")
    ("            raise AbortError(f\"{len(live)} consistency signatures, quorum {self.config.quorum}\")",
     "            pass",
     "server: fewer consistency signatures than the quorum accepted")
    ("        if len(live) < self.config.quorum:\n            raise AbortError(f\"{len(live)} consistency",
     "        if len(live) < self.config.quorum - 1:\n            raise AbortError(f\"{len(live)} consistency",
     "server: quorum-1 consistency signatures accepted")
    ("            if len(live) < self.config.quorum:\n                raise AbortError(f\"{len(live)} masked inputs",
     "            if len(live) < self.config.quorum - 1:\n                raise AbortError(f\"{len(live)} masked inputs",
     "server: quorum-1 masked inputs go on to the consistency round")
    ("            if keycheck.is_low_order(key):",
     "            if False:",
     "server: low-order advertised key accepted")
    ("            if owner is not None:",
     "            if False:",
     "server: a copied advertised key accepted")
    ("        if msg.c_public == msg.s_public:",
     "        if False:",
     "server: the same key advertised twice accepted")
    ("        if got != want or len(msg.shares) != len(want):",
     "        if not got <= want:",
     "server: a client sharing with too few neighbours accepted")
    ("            if r.share.index != idx or r.share.threshold != cfg.threshold:",
     "            if r.share.index != idx:",
     "server: threshold of a revealed share unchecked")
    ("        if u in self._got:\n            raise ProtocolError(f\"duplicate",
     "        if False:\n            raise ProtocolError(f\"duplicate",
     "server: duplicate message accepted")
    ("            k = len(cfg.neighbours[v] & holders)",
     "            k = len(cfg.neighbours[v] | holders)",
     "server: holders of a dropped client's shares over-counted")
    ("            return tuple(sorted(shares, key=lambda s: s.index)[:t])",
     "            return tuple(sorted(shares, key=lambda s: s.index)[:t - 1])",
     "server: reconstruct from t-1 shares")
).out

_sa_unmask = (
    _m("protocols/secagg/unmask.py")
    ("        if s_priv.public_key().to_bytes() != public:",
     "        if False:",
     "server: reconstructed mask key not checked against its advertisement")
).out

# -- protocols/paillier_sum ----------------------------------------------------------

_paillier = (
    _m("protocols/paillier_sum/parties.py")
    ("    if len(msg.included) < config.min_clients:",
     "    if len(msg.included) < config.min_clients - 1:",
     "a sum of min_clients-1 inputs decrypted")
    ("    if vec.summands != len(msg.included):",
     "    if vec.summands < len(msg.included):",
     "a sum of more summands than named clients decrypted")
    ("    if extra:\n        raise ProtocolError(f\"the sum names clients outside",
     "    if False:\n        raise ProtocolError(f\"the sum names clients outside",
     "a sum naming clients outside the round decrypted")
    ("    if vec.layout != layout:",
     "    if False:",
     "a sum under another packing layout decrypted")
    ("    if layout != expected:\n        raise ProtocolError(",
     "    if False:\n        raise ProtocolError(",
     "a setup with another packing layout accepted")
    ("already received the setup\")\n"
     "        if self._pinned_fp is not None and msg.key_fingerprint() != self._pinned_fp:\n"
     "            raise ProtocolError(\"the announced public key is not the expected one\")\n"
     "        layout = _check_setup(",
     "already received the setup\")\n"
     "        if False:\n"
     "            raise ProtocolError(\"the announced public key is not the expected one\")\n"
     "        layout = _check_setup(",
     "a setup under an unexpected public key accepted")
    ("        if msg.sender != KEY_HOLDER:",
     "        if False:",
     "a setup from someone other than the key holder accepted")
    ("        if v.size and int(np.abs(v.astype(np.int64)).max()) > q.max_int:",
     "        if v.size and int(np.abs(v.astype(np.int64)).max()) > 2 * q.max_int:",
     "integer inputs past the largest |v| accepted")
    # malicious mode: the decryptor's checks of a decryption request
    ("    if len(set(ids)) != len(ids):\n        raise ProtocolError(f\"the request names a client twice",
     "    if False:\n        raise ProtocolError(f\"the request names a client twice",
     "malicious mode: a request naming one client twice decrypted")
    ("    if len(ids) < config.min_clients:",
     "    if len(ids) < config.min_clients - 1:",
     "malicious mode: min_clients-1 signed inputs decrypted")
    ("    if len(digests) != len(inputs):",
     "    if False:",
     "malicious mode: one ciphertext twice decrypted")
    ("            config.registry[sender].verify(\n                signature, input_signing_payload(config, sender, payload, proofs))",
     "            pass",
     "malicious mode: decryptor skips the signatures")
    ("    _check_proofs(config, checked, public_key, insecure)",
     "    pass",
     "malicious mode: decryptor skips the proofs of plaintext knowledge")
    ("        if vec.summands != 1:\n            raise ProtocolError(f\"client {sender}'s vector claims",
     "        if vec.summands > 2:\n            raise ProtocolError(f\"client {sender}'s vector claims",
     "malicious mode: an input claiming two summands multiplied in")
    ("        if self.config.mode != \"malicious\":\n            raise ProtocolError(\"signed inputs belong to",
     "        if False:\n            raise ProtocolError(\"signed inputs belong to",
     "a semi-honest decryptor takes a signed-inputs request")
    ("        if self.config.mode == \"malicious\":\n            raise ProtocolError(\"mode='malicious': a decryptor decrypts only",
     "        if False:\n            raise ProtocolError(\"mode='malicious': a decryptor decrypts only",
     "malicious mode: decryptor decrypts the aggregator's product")
    ("        if self.state == \"done\":\n            raise ProtocolError(\n                f\"decryptor {self.client_id} already answered one decryption",
     "        if False:\n            raise ProtocolError(\n                f\"decryptor {self.client_id} already answered one decryption",
     "malicious mode: a decryptor answers a second request")
).out

_paillier_config = (
    _m("protocols/paillier_sum/config.py")
    ("        if 2 * t <= k:",
     "        if 2 * t < k:",
     "malicious mode with 2t = k (two disjoint t-groups) accepted")
    ("        if self.min_clients < 2:",
     "        if self.min_clients < 1:",
     "malicious mode with min_clients 1 accepted")
    ("        if len({v.to_bytes() for v in reg.values()}) != len(reg):",
     "        if False:",
     "one identity key registered for two clients accepted")
).out

_paillier_flower = (
    _m("protocols/flower/paillier.py")
    ("    if digest in spent:",
     "    if False:",
     "a node takes part twice in one malicious-mode configuration")
).out

_popk = (
    _m("secagg/paillier/popk.py")
    ("    rho = [secrets.randbits(_RHO_BITS) | 1 for _ in flat]",
     "    rho = [1 for _ in flat]",
     "batch verification without random exponents (errors of two proofs can cancel)")
    ("    if left * left % n2 == right * right % n2:\n        return",
     "    if left % n2 == left % n2:\n        return",
     "batch verification accepts everything")
    ("            if not 0 < c < n2 or gmpy2.gcd(c, n) != 1:\n                raise IntegrityError(f\"item {k}: ciphertext",
     "            if not 0 < c < n2:\n                raise IntegrityError(f\"item {k}: ciphertext",
     "batch verification takes a non-unit ciphertext",
     "EncryptedVector refuses a non-unit ciphertext when it is built or parsed (validate_ciphertext), so no vector reaching the check holds one")
    ("            if gmpy2.gcd(p.a, n) != 1 or gmpy2.gcd(p.w, n) != 1:",
     "            if False:",
     "batch verification takes a non-unit commitment or response")
    ("        if _challenge(head, index, cc, a, w2) != e:",
     "        if _challenge(head, index, cc, a, w2) == -1:",
     "one-by-one verification never compares the challenge")
    ("    h.update(len(context).to_bytes(4, \"big\") + context)",
     "    h.update(b\"\")",
     "challenges not bound to the context")
    ("        if not 0 < c < n2 or gmpy2.gcd(c, n) != 1:\n            raise IntegrityError(f\"ciphertext {j} is not a unit",
     "        if not 0 < c < n2:\n            raise IntegrityError(f\"ciphertext {j} is not a unit",
     "one-by-one verification takes a non-unit ciphertext",
     "EncryptedVector refuses a non-unit ciphertext when it is built or parsed (validate_ciphertext), so no vector reaching the check holds one")
).out

# -- dp ------------------------------------------------------------------------------

_dp_ledger = (
    _m("dp/ledger.py")
    ("        self.entries.append(LedgerEntry(seg, round))",
     "        pass",
     "a charge records nothing")
    ("            <= self.epsilon_budget\n        )",
     "            <= 2 * self.epsilon_budget\n        )",
     "exact budget check against twice the budget")
    ("        ok = quick_upper_bound(merged, self.delta) <= self.epsilon_budget or (",
     "        ok = quick_upper_bound(merged, self.delta) >= 0 or (",
     "quick bound accepts everything")
    ("            if self._cleared.get(key, -1) >= s.steps:",
     "            if self._cleared.get(key, -1) >= 0:",
     "cleared-budget cache ignores the step count")
    ("        return max(0.0, self.epsilon_budget - self.spent().epsilon)",
     "        return self.epsilon_budget",
     "remaining ignores what was spent")
    ("        if math.isnan(b) or b <= 0:",
     "        if math.isnan(b) or b < 0:",
     "a budget of 0 accepted")
).out

_dp_local = (
    _m("dp/local.py")
    ("        self.ledger.charge(self.sample_rate, self.noise_multiplier, t, round=round)",
     "        pass",
     "train_round charges nothing")
    ("            if self._steps_granted <= 0:",
     "            if self._steps_granted < 0:",
     "one optimizer step past the charged ones allowed")
    ("        if not (math.isfinite(c) and c > 0):",
     "        if not (math.isfinite(c) and c >= 0):",
     "max_grad_norm 0 accepted")
).out

_dp_client_level = (
    _m("dp/client_level.py")
    ("            self.ledger.charge(self.client_rate, self.noise_multiplier, 1, round=round)",
     "            pass",
     "client-level round charges nothing")
).out

_dp_accounting = (
    _m("dp/accounting.py")
    ("    if not (math.isfinite(v) and 0.0 < v <= 1.0):\n        raise ParameterError(f\"{name}={q!r} is outside (0, 1]\")",
     "    if not (math.isfinite(v) and 0.0 <= v <= 1.0):\n        raise ParameterError(f\"{name}={q!r} is outside (0, 1]\")",
     "sample rate 0 accepted")
    ("    if not math.isfinite(s) or s < 0.0:\n        raise ParameterError(f\"noise_multiplier={sigma!r}",
     "    if s < 0.0:\n        raise ParameterError(f\"noise_multiplier={sigma!r}",
     "infinite noise multiplier accepted")
    ("        if 0.0 < s < MIN_NOISE_MULTIPLIER:",
     "        if 0.0 < s < MIN_NOISE_MULTIPLIER / 10:",
     "noise below the accountable floor accounted")
    ("    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:",
     "    if isinstance(steps, bool) or steps < 0:",
     "fractional step counts accepted")
    ("    if not (math.isfinite(d) and 0.0 < d < 1.0):\n        raise ParameterError(f\"delta={delta!r} is outside (0, 1)\")",
     "    if not (math.isfinite(d) and 0.0 < d <= 1.0):\n        raise ParameterError(f\"delta={delta!r} is outside (0, 1)\")",
     "delta 1 accepted")
    ("    if d < MIN_DELTA:",
     "    if d < MIN_DELTA / 1e6:",
     "a delta too small to account for accepted")
    ("        if d >= 1.0 / n:",
     "        if d > 1.0 / n:",
     "delta exactly 1/N passes without a warning")
    ("    if points > MAX_GRID_POINTS:\n        raise AccountantLimitError(",
     "    if False:\n        raise AccountantLimitError(",
     "PRV grid past its bound attempted")
    ("        return 0.0\n    if any(s.noise_multiplier == 0.0 for s in history):\n"
     "        return math.inf\n    # epsilon is >= 0",
     "        return 0.0\n    if any(s.noise_multiplier == 0.0 for s in history):\n"
     "        return 0.0\n    # epsilon is >= 0",
     "no noise reported as no privacy loss")
    ("    return max(0.0, _BACKENDS[accountant](history, delta))",
     "    return _BACKENDS[accountant](history, delta)",
     "negative epsilon released at large delta")
).out

_dp_distributed = (
    _m("dp/distributed.py")
    ("    honest = base.min_survivors - base.colluding_clients",
     "    honest = base.min_survivors",
     "colluding clients' noise shares counted as honest")
    ("    if min_survivors - colluding < 1:",
     "    if min_survivors - colluding < 0:",
     "no honest noise share accepted")
    ("        if not (0.0 < self.sample_rate <= 1.0):",
     "        if not (0.0 <= self.sample_rate <= 1.0):",
     "sample rate 0 accepted")
).out

_dp_discrete = (
    _m("dp/discrete.py")
    ("    keep = bits != np.uint64(1 << 63)  # \"minus zero\" rejected",
     "    keep = bits == bits  # \"minus zero\" rejected",
     "discrete Laplace keeps \"minus zero\" (zero drawn twice as often)")
    ("        g_hat -= ratio\n",
     "        g_hat += ratio\n",
     "discrete Gaussian acceptance centred on the wrong side")
    ("        keep &= y >= -m\n",
     "        keep &= y > -m\n",
     "Poisson never draws zero")
    ("    return best + 1e-9 * scale",
     "    return best - 0.5",
     "Poisson envelope below the pmf")
    ("    both = poisson(muq / 2, 2 * n, src)",
     "    both = poisson(muq, 2 * n, src)",
     "Skellam with twice its variance")
    ("    if f < 0 or f > MAX_VARIANCE:",
     "    if f > MAX_VARIANCE:",
     "negative variance accepted")
    ("        acc = s < 0.0\n",
     "        acc = s < 1.0\n",
     "fast path accepts past the threshold")
    ("            if lo > g + err:\n                return True",
     "            if lo > g - err:\n                return True",
     "exact comparison accepts within the error band")
).out

_dp_ddp_accounting = (
    _m("dp/distributed_accounting.py")
    ("        return float(10.0 * np.exp(-c * k / (k + 1.0)).sum())",
     "        return float(np.exp(-c * k / (k + 1.0)).sum())",
     "tau without its factor 10")
    ("    sd = math.sqrt(shares * variance)",
     "    sd = math.sqrt((shares + 1) * variance)",
     "one noise share more than there is counted")
    ("    t3 = a / 2.0 * (s2 + math.sqrt(d) * tau) ** 2",
     "    t3 = a / 2.0 * s2**2",
     "third bound drops its tau term")
    ("    return np.asarray(a * l2**2 / (2.0 * mu) + extra, dtype=np.float64)",
     "    return np.asarray(a * l2**2 / (2.0 * mu), dtype=np.float64)",
     "Skellam RDP as a Gaussian's (correction term dropped)")
    ("    return l2 * min(math.sqrt(dimension), l2)",
     "    return l2",
     "L1 bound taken as the L2 bound")
    ("    return min(det, math.sqrt(sq))",
     "    return min(det, math.sqrt(sq)) - 1.0",
     "rounded L2 bound one below the proven bound")
    ("    if variance < DGAUSS_MIN_VARIANCE:\n        raise ParameterError(\n",
     "    if variance < DGAUSS_MIN_VARIANCE / 100:\n        raise ParameterError(\n",
     "discrete Gaussian shares below sigma 1/2 accounted")
    ("+ ls * lq + math.log(3.0)",
     "+ ls * lq",
     "Zhu-Wang tail without its factor 3")
    ("        head = np.array([(a - 1) * l1q + math.log1p((a - 1) * q),",
     "        head = np.array([math.log1p((a - 1) * q),",
     "first subsampling term loses its (1-q)^(a-1) factor")
    ("            total += count * round_rdp(r, fine=fine)",
     "            total += round_rdp(r, fine=fine)",
     "repeated rounds counted once")
    ("    elif all(r.sample_rate == 1.0 for r in rounds):",
     "    elif True:",
     "sampling never amplifies (the bound is sound but no longer the stated one)")
).out

# -- the testing kit -----------------------------------------------------------------

_kit = (
    _m("protocols/testing/checks.py")
    ("        if d.state_changed:\n            return f\"refused",
     "        if False:\n            return f\"refused",
     "a refused message that changed its receiver counted as contained")
    ("    if not np.all(err <= slack):",
     "    if not np.any(err <= slack):",
     "a sum wrong in some coordinates passes")
    ("    except Exception as exc:\n        error = exc\n    else:\n        fail(prop, spec, scenario, f\"returned an output (included",
     "    except Exception as exc:\n        return exc  # type: ignore[return-value]\n    else:\n        fail(prop, spec, scenario, f\"returned an output (included",
     "assert_aborts accepts any exception as an abort")
    ("        if len(by_kind) > 1:",
     "        if len(by_kind) > 2:",
     "double reveal never caught")
    ("    if frozenset(result.included) != want:",
     "    if False:",
     "wrong included set passes")
    ("        if raw.shape != exact.shape or not np.array_equal(raw.astype(exact.dtype), exact):",
     "        if raw.shape != exact.shape:",
     "a wrong raw sum passes")
    ("        if not isinstance(d.error, refusals):",
     "        if False:",
     "a refusal with any exception counted as contained")
).out

_kit_props = (
    _m("protocols/testing/properties.py")
    ("            if run.result is not None or not run.aborted:",
     "            if run.result is not None:",
     "abort property stops requiring the parties to end aborted")
).out

#: Every target: its name, the test files that exercise it, its mutants.
TARGETS: tuple[Target, ...] = (
    Target("encoding", ("tests/test_encoding.py",), tuple(_enc)),
    Target("prg", ("tests/test_prg.py", "tests/test_mask_domains.py"), tuple(_prg)),
    Target("shamir", ("tests/test_shamir.py",), tuple(_shamir)),
    Target("kex", ("tests/test_kex_aead_sign.py",), tuple(_kex)),
    Target("aead", ("tests/test_kex_aead_sign.py",), tuple(_aead)),
    Target("sign", ("tests/test_kex_aead_sign.py",), tuple(_sign)),
    Target("util", ("tests/test_encoding.py", "tests/test_shamir.py",
                    "tests/test_kex_aead_sign.py", "tests/test_prg.py"), tuple(_util)),
    Target("sa-binding", _SA_TESTS, tuple(_sa_binding + _sa_fresh + _sa_keycheck)),
    Target("sa-config", _SA_TESTS, tuple(_sa_config + _sa_partition)),
    Target("sa-messages", _SA_TESTS, tuple(_sa_messages)),
    Target("sa-client", _SA_TESTS, tuple(_sa_client)),
    Target("sa-server", _SA_TESTS, tuple(_sa_server + _sa_unmask)),
    Target("paillier", ("tests/test_paillier_sum.py", "tests/test_mutation_kills_paillier.py",
                        "tests/test_paillier_sum_malicious.py",
                        "tests/test_paillier_sum_malicious_popk.py"),
           tuple(_paillier + _paillier_config)),
    Target("popk", ("tests/test_paillier_popk.py",), tuple(_popk)),
    Target("paillier-flower", ("tests/test_flower_paillier_malicious.py",),
           tuple(_paillier_flower)),
    Target("dp-ledger", ("tests/test_dp_ledger.py", "tests/test_dp_budget_cli.py"),
           tuple(_dp_ledger)),
    Target("dp-local", ("tests/test_dp_local.py",), tuple(_dp_local)),
    Target("dp-central", ("tests/test_dp_client_level.py", "tests/test_fedavg_dp.py"),
           tuple(_dp_client_level)),
    Target("dp-accounting", ("tests/test_dp_accounting.py", "tests/test_mutation_kills_dp.py"),
           tuple(_dp_accounting)),
    Target("dp-distributed", ("tests/test_dp_distributed.py",
                              "tests/test_dp_distributed_accounting.py",
                              "tests/test_mutation_kills_dp.py"), tuple(_dp_distributed)),
    Target("dp-discrete", ("tests/test_dp_discrete.py",), tuple(_dp_discrete)),
    Target("dp-ddp-accounting", ("tests/test_dp_distributed_accounting.py",),
           tuple(_dp_ddp_accounting)),
    Target("kit", ("tests/test_testing_kit_units.py", "tests/test_testing_kit_checks_planted.py",
                   "tests/test_testing_kit_planted.py", "tests/test_mutation_kills_kit.py"),
           tuple(_kit + _kit_props)),
)


# -- the driver ----------------------------------------------------------------------


def apply(source: str, mutant: Mutant) -> str:
    """``source`` with ``mutant`` planted; :class:`MutantRot` unless its text
    occurs exactly once."""
    n = source.count(mutant.find)
    if n != 1:
        raise MutantRot(f"{mutant.label}: the text to replace occurs {n} times, not once")
    if mutant.replace == mutant.find:
        raise MutantRot(f"{mutant.label}: the replacement changes nothing")
    return source.replace(mutant.find, mutant.replace)


def check_targets(root: Path, targets: Iterable[Target]) -> None:
    """Raise :class:`MutantRot` if any mutant no longer applies to ``root``."""
    for target in targets:
        for test in target.tests:
            if not (root / test).is_file():
                raise MutantRot(f"{target.name}: test file {test} does not exist")
        for m in target.mutants:
            apply((root / m.path).read_text(), m)


def _pytest(copy: Path, tests: Sequence[str], timeout: float,
            extra_env: Mapping[str, str] | None = None) -> tuple[str, float, str]:
    """Run pytest on ``tests`` inside ``copy``: ("passed" | "failed" | "timeout",
    seconds, last lines of output)."""
    env = dict(os.environ, **(extra_env or {}))
    env["PYTHONPATH"] = str(copy) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a mutant must never be cached as bytecode
    shutil.rmtree(copy / ".hypothesis", ignore_errors=True)  # no example carried over
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "--no-header", "-p", "no:cacheprovider",
           "-p", "no:randomly", *tests]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=copy, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this run started, by its id
        proc.communicate()
        return "timeout", time.monotonic() - t0, ""
    tail = "\n".join(out.strip().splitlines()[-3:])
    return ("passed" if proc.returncode == 0 else "failed"), time.monotonic() - t0, tail


def _copy_tree(root: Path, dest: Path) -> Path:
    copy = dest / "tree"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns(*_SKIP), symlinks=True)
    return copy


def _check_import_origin(copy: Path, targets: Sequence[Target]) -> None:
    """The copy, not an installed version, must be what the tests import."""
    pkgs = sorted({m.path.split("/")[0] for t in targets for m in t.mutants})
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")
    code = ";".join(f"import {p}; print({p}.__file__)" for p in pkgs)
    r = subprocess.run([sys.executable, "-c", code], cwd=copy, env=env,
                       capture_output=True, text=True, check=False)
    for line in r.stdout.split():
        if not Path(line).resolve().is_relative_to(copy.resolve()):
            raise RuntimeError(f"tests would import {line}, not the mutated copy in {copy}")
    if r.returncode != 0:
        raise RuntimeError(f"cannot import {pkgs} from the copy: {r.stderr}")


def run(root: Path, targets: Sequence[Target], *, timeout: float | None = None,
        min_timeout: float = 30.0, factor: float = 5.0, baseline_timeout: float = 900.0,
        extra_env: Mapping[str, str] | None = None,
        log: Callable[[str], object] | None = None) -> Report:
    """Run every mutant of ``targets`` against a temporary copy of ``root``.

    Each mutant's test run may take ``timeout`` seconds, or by default
    ``max(min_timeout, factor * baseline)`` where ``baseline`` is how long the
    unmutated run took; past it the mutant counts as killed (a hang).
    ``extra_env`` is added to the environment of every test run; ``log``
    takes one line of progress. Raises :class:`MutantRot` if a mutant does
    not apply and :class:`RuntimeError` if the unmutated tests fail in the copy.
    """
    def say(line: str) -> None:
        if log is not None:
            log(line)

    check_targets(root, targets)
    report = Report()
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        copy = _copy_tree(root, Path(tmp))
        _check_import_origin(copy, targets)
        for target in targets:
            status, secs, tail = _pytest(copy, target.tests, baseline_timeout, extra_env)
            if status != "passed":
                raise RuntimeError(f"{target.name}: the unmutated tests {status} in the copy "
                                   f"({secs:.0f}s): {tail}")
            limit = timeout if timeout is not None else max(min_timeout, factor * secs)
            say(f"[{target.name}] baseline passed in {secs:.1f}s; "
                f"{len(target.mutants)} mutants, {limit:.0f}s each at most")
            group: list[Outcome] = []
            report.outcomes[target.name] = group
            for m in target.mutants:
                if m.equivalent:
                    group.append(Outcome(m, "equivalent"))
                    say(f"  equivalent  {m.why}")
                    continue
                path = copy / m.path
                original = path.read_text()
                path.write_text(apply(original, m))
                try:
                    status, secs, tail = _pytest(copy, target.tests, limit, extra_env)
                finally:
                    path.write_text(original)
                verdict = {"failed": "killed", "passed": "survived"}.get(status, status)
                group.append(Outcome(m, verdict, secs, tail))
                say(f"  {verdict:<10}  {m.why}  ({secs:.1f}s)")
    return report


def format_report(report: Report) -> str:
    lines = [f"{'target':<10} {'killed':>6} {'timeout':>7} {'survived':>8} "
             f"{'equivalent':>10} {'score':>7}"]
    for name in report.outcomes:
        c = report.counts(name)
        lines.append(f"{name:<10} {c['killed']:>6} {c['timeout']:>7} {c['survived']:>8} "
                     f"{c['equivalent']:>10} {report.score(name):>7.1%}")
    c = report.counts()
    lines.append(f"{'all':<10} {c['killed']:>6} {c['timeout']:>7} {c['survived']:>8} "
                 f"{c['equivalent']:>10} {report.score():>7.1%}")
    surv = report.survivors()
    lines.append("")
    lines.append(f"survivors: {len(surv)}" + ("" if surv else " (none)"))
    lines.extend(f"  {o.mutant.label}" for o in surv)
    eq = [o for g in report.outcomes.values() for o in g if o.status == "equivalent"]
    if eq:
        lines.append(f"equivalent (not run, not counted): {len(eq)}")
        lines.extend(f"  {o.mutant.label}: {o.mutant.equivalent}" for o in eq)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    names = [t.name for t in TARGETS]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", action="append", choices=names,
                    help="run only this target (repeatable); default all")
    ap.add_argument("--match", action="append", metavar="TEXT",
                    help="run only the mutants whose description contains TEXT "
                         "(repeatable), for example to recheck survivors")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds per test run before the mutant counts as killed "
                         "(default: 5 times the unmutated run, at least 30)")
    ap.add_argument("--min-score", type=float, default=0.0,
                    help="exit 1 when the score is below this fraction (default 0)")
    ap.add_argument("--json", type=Path, help="also write the report as JSON here")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--quiet", action="store_true", help="print only the summary")
    args = ap.parse_args(argv)
    targets = [t for t in TARGETS if not args.target or t.name in args.target]
    if args.match:
        targets = [Target(t.name, t.tests, keep) for t in targets
                   if (keep := tuple(m for m in t.mutants
                                     if any(x in m.why for x in args.match)))]
    if args.list:
        for t in targets:
            print(f"[{t.name}] tests: {' '.join(t.tests)}")
            for m in t.mutants:
                print(f"  {m.label}" + (f"  (equivalent: {m.equivalent})" if m.equivalent
                                         else ""))
        return 0
    try:
        report = run(ROOT, targets, timeout=args.timeout,
                     log=None if args.quiet else (lambda s: print(s, flush=True)))
    except (MutantRot, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report.to_json(), indent=2))
    return 1 if report.score() < args.min_score else 0


if __name__ == "__main__":
    sys.exit(main())
