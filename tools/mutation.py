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
    .venv/bin/python tools/mutation.py --target shamir  # one target
    .venv/bin/python tools/mutation.py --list           # the mutants, not run

It prints killed/survived per target, the score ``killed / (killed +
survived)`` and every survivor, and exits 1 if the score is below
``--min-score`` (default 0), 2 if a mutant no longer matches the source (the
list must follow the code) or the unmutated tests fail.

To cover another module (``protocols/secagg``, ``dp``, ...), add a
:class:`Target` with its test files and mutants to :data:`TARGETS`.
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
