"""A throwaway local Flower deployment: one SuperLink and N SuperNodes on loopback.

:class:`LocalDeployment` makes a P-384 certificate authority and a server
certificate (SANs ``127.0.0.1`` and ``localhost``), one EC P-384 key per node
(OpenSSH format; Flower refuses Ed25519 here), starts a SuperLink with TLS and
SuperNode authentication on free loopback ports, registers each node's public
key, starts the SuperNodes, and waits (bounded) for the SuperLink's ``/health``
and for every node to be online. Leaving the ``with`` block stops every
process it started, by process group id (each child is started in a new
session, so its own ``flwr-clientapp`` / ``flwr-serverapp`` children go too):
SIGTERM, then SIGKILL after a grace period. This holds on every path:
normal exit, exceptions and Ctrl-C.

Security assumption: everything here is for a single machine. The CA key
lives in a temporary folder for the lifetime of the deployment and is deleted
with it; the SuperLink and SuperNodes run as the current user.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import queue
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from secagg.errors import SecAggError

__all__ = [
    "DeploymentError",
    "LocalDeployment",
    "NodeHandle",
    "flower_environment",
    "free_port",
    "make_node_key",
    "make_tls_material",
]

#: the connection name written to ``$FLWR_HOME/config.toml``
CONNECTION = "local-deployment"


class DeploymentError(SecAggError):
    """A local Flower deployment failed to start, or a step ran past its time limit."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free when asked (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def make_tls_material(folder: Path, *, days: int = 2) -> tuple[Path, Path, Path]:
    """Write a fresh P-384 CA and a server certificate it signs into ``folder``.

    The server certificate names ``127.0.0.1`` and ``localhost`` and is valid
    for ``days`` days (1..30). Returns ``(ca.pem, server.pem, server.key)``;
    the keys are written with mode 0600 and never leave ``folder``.
    """
    if not 1 <= days <= 30:
        raise DeploymentError(f"certificate lifetime days={days} is outside 1..30")
    now = datetime.datetime.now(datetime.timezone.utc)
    start = now - datetime.timedelta(minutes=5)
    end = now + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "secagg local deployment CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA384())
    )
    server_key = ec.generate_private_key(ec.SECP384R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
            ]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA384())
    )
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(key_path, server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return ca_path, cert_path, key_path


def make_node_key(folder: Path, name: str) -> tuple[Path, Path]:
    """Write an EC P-384 key pair in OpenSSH format: ``(name, name.pub)``."""
    key = ec.generate_private_key(ec.SECP384R1())
    private = folder / name
    public = folder / f"{name}.pub"
    _write_private(private, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH) + b"\n")
    return private, public


def flower_environment(flwr_home: Path) -> dict[str, str]:
    """The environment every Flower process of a deployment runs with: its own
    ``FLWR_HOME``, no telemetry, no update check, and this copy of the library
    first on ``PYTHONPATH`` (so ServerApp and ClientApp processes run the same
    code as the caller, even with Flower's executables from another environment)."""
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(
        [here, *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != here)])
    env.update({
        "FLWR_HOME": str(flwr_home),
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "PYTHONUNBUFFERED": "1",
        # Flower starts its helpers (flower-superexec, flwr-clientapp) from PATH
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    })
    return env


def _flower_bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise DeploymentError(
            f"the Flower executable {name!r} is not installed; "
            "from the checkout: pip install -e '.[flower]'")
    return found


@dataclass
class NodeHandle:
    """One SuperNode: its process, Flower node id, key pair and node config."""

    index: int
    node_id: int
    private_key: Path
    public_key: Path
    node_config: dict[str, str | int]
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _format_node_config(cfg: Mapping[str, str | int]) -> str:
    parts = []
    for k, v in cfg.items():
        if not k.replace("-", "").replace("_", "").isalnum():
            raise DeploymentError(f"node config key {k!r} is not alphanumeric (with - or _)")
        if isinstance(v, str):
            if '"' in v or "\\" in v:
                raise DeploymentError(f"node config value {v!r} holds a quote or backslash")
            parts.append(f'{k}="{v}"')
        else:
            parts.append(f"{k}={int(v)}")
    return " ".join(parts)


@dataclass
class LocalDeployment:
    """SuperLink + ``nodes`` SuperNodes with TLS and node authentication on loopback.

    Use as a context manager; see the module docstring. ``node_config`` maps a
    node index (0..nodes-1) to extra ``--node-config`` entries;
    ``start_timeout`` (seconds) bounds each wait. With ``identity``, each
    node also gets an Ed25519 identity key and the registry file of every
    node's key by Flower node id (``registry.json`` in :attr:`root`), named in
    its node config for malicious-mode sessions (see
    :mod:`protocols.flower.identity`). With ``paillier_committee=k`` (1..nodes)
    a trusted dealer runs here, in the launcher's process (never in the
    ServerApp), after the nodes are registered: it deals a
    ``paillier_threshold``-of-k threshold Paillier key (default t: a majority)
    of ``paillier_key_bits`` bits to the first k nodes' ids, writes the public
    material (:attr:`paillier_public`, named in every node's config) and
    each member's key share (mode 0600, named in that node's config only),
    and forgets the key (see :mod:`protocols.flower.paillier`). The key is
    dealt for malicious-mode sessions when ``paillier_malicious`` is true
    (default: ``identity``), for semi-honest ones otherwise (every node
    refuses the other mode on it); every node also gets its own journal
    folder ``paillier-journal<index>`` (mode 0700, ``secagg-paillier-journal``),
    where it records the malicious-mode sessions it took part in across runs
    and restarts. A single-user demo: the share files stay in :attr:`root`, readable by the
    OS user that also runs the ServerApp process, so nothing there keeps the
    server from reading every share.
    """

    nodes: int
    node_config: Mapping[int, Mapping[str, str | int]] = field(default_factory=dict)
    start_timeout: float = 90.0
    workdir: Path | None = None
    keep_logs: bool = False
    identity: bool = False
    paillier_committee: int = 0
    paillier_threshold: int = 0
    paillier_key_bits: int = 2048
    paillier_malicious: bool | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.nodes <= 200:
            raise DeploymentError(f"nodes={self.nodes} is outside 1..200")
        if not 0 <= self.paillier_committee <= self.nodes:
            raise DeploymentError(f"paillier_committee={self.paillier_committee} is outside "
                                  f"0..nodes={self.nodes}")
        if not 0 <= self.paillier_threshold <= self.paillier_committee:
            raise DeploymentError(f"paillier_threshold={self.paillier_threshold} is outside "
                                  f"0..paillier_committee={self.paillier_committee}")
        if not 1.0 <= self.start_timeout <= 3600.0:
            raise DeploymentError(f"start_timeout={self.start_timeout} s is outside 1..3600")
        self._own_dir = self.workdir is None
        self.root = Path(tempfile.mkdtemp(prefix="secagg-flower-")) if self.workdir is None \
            else Path(self.workdir)
        self.flwr_home = self.root / "flwr-home"
        self.port = 0
        self.handles: list[NodeHandle] = []
        self.superlink: subprocess.Popen[bytes] | None = None
        self._procs: list[subprocess.Popen[bytes]] = []
        self._previous_sigterm: object = _NOT_INSTALLED
        self.ca = self.root / "ca.pem"

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> LocalDeployment:
        self._previous_sigterm = _stop_on_sigterm()
        try:
            self.start()
        except BaseException:
            self.stop()
            _restore_sigterm(self._previous_sigterm)
            raise
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.stop()
        finally:
            _restore_sigterm(self._previous_sigterm)

    @property
    def env(self) -> dict[str, str]:
        return flower_environment(self.flwr_home)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _spawn(self, args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                list(args), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, cwd=self.root, start_new_session=True)
        self._procs.append(proc)
        return proc

    def start(self) -> None:
        """Make keys, start the SuperLink, register and start every node, wait."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.flwr_home.mkdir(exist_ok=True)
        self.ca, cert, key = make_tls_material(self.root)
        self.port = free_port()
        self._write_cli_config()
        self.superlink = self._spawn([
            _flower_bin("flower-superlink"),
            "--ssl-ca-certfile", str(self.ca), "--ssl-certfile", str(cert),
            "--ssl-keyfile", str(key), "--enable-supernode-auth",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--disable-runtime-dependency-installation",
        ], self.root / "superlink.log")
        self._wait_health()
        for i in range(self.nodes):
            priv, pub = make_node_key(self.root, f"node{i}")
            node_id = self._register(pub)
            cfg = dict(self.node_config.get(i, {}))
            self.handles.append(NodeHandle(i, node_id, priv, pub, cfg))
        if self.identity:
            self._write_identities()
        if self.paillier_committee:
            self._deal_paillier()
        for h in self.handles:
            self.start_node(h)
        self.wait_nodes(self.nodes)

    @property
    def registry(self) -> Path:
        """The identity registry file (with ``identity=True``)."""
        return self.root / "registry.json"

    def _write_identities(self) -> None:
        from secagg.sign import SigningKey

        from .identity import write_registry, write_signing_key

        keys = {h.node_id: SigningKey.generate() for h in self.handles}
        write_registry(self.registry, {i: k.verify_key() for i, k in keys.items()})
        for h in self.handles:
            path = self.root / f"identity{h.index}.key"
            write_signing_key(path, keys[h.node_id])
            h.node_config.update({"secagg-registry": str(self.registry),
                                  "secagg-signing-key": str(path)})

    @property
    def paillier_public(self) -> Path:
        """The threshold Paillier public material file (with ``paillier_committee``)."""
        return self.root / "paillier-public.bin"

    def _deal_paillier(self) -> None:
        from .paillier import JOURNAL_CONFIG_KEY, PUBLIC_CONFIG_KEY, SHARE_CONFIG_KEY, deal_to_files

        members = [h.node_id for h in self.handles[:self.paillier_committee]]
        t = self.paillier_threshold or len(members) // 2 + 1
        malicious = self.identity if self.paillier_malicious is None else self.paillier_malicious
        public, shares = deal_to_files(self.root, members, t, key_bits=self.paillier_key_bits,
                                       mode="malicious" if malicious else "semi-honest")
        if public != self.paillier_public:  # pragma: no cover - deal_to_files' fixed name
            raise DeploymentError(f"the dealer wrote {public}, not {self.paillier_public}")
        for h in self.handles:
            h.node_config[PUBLIC_CONFIG_KEY] = str(public)
            journal = self.root / f"paillier-journal{h.index}"
            journal.mkdir(mode=0o700, exist_ok=True)
            h.node_config[JOURNAL_CONFIG_KEY] = str(journal)
            if h.node_id in shares:
                h.node_config[SHARE_CONFIG_KEY] = str(shares[h.node_id])

    def start_node(self, handle: NodeHandle) -> None:
        """(Re)start the SuperNode process of ``handle``."""
        args = [
            _flower_bin("flower-supernode"),
            "--superlink", self.address, "--root-certificates", str(self.ca),
            "--auth-supernode-private-key", str(handle.private_key),
            "--host", "127.0.0.1", "--port", str(free_port()),
        ]
        if handle.node_config:
            args += ["--node-config", _format_node_config(handle.node_config)]
        handle.log = self.root / f"supernode{handle.index}.log"
        handle.process = self._spawn(args, handle.log)

    def _write_cli_config(self) -> None:
        (self.flwr_home / "config.toml").write_text(
            "[superlink]\n"
            f'default = "{CONNECTION}"\n\n'
            f"[superlink.{CONNECTION}]\n"
            f'address = "{self.address}"\n'
            f'root-certificates = "{self.ca}"\n'
        )

    def _wait_health(self) -> None:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        deadline = time.monotonic() + self.start_timeout
        url = f"https://127.0.0.1:{self.port}/health"
        while True:
            if self.superlink is not None and self.superlink.poll() is not None:
                raise DeploymentError(
                    f"the SuperLink exited with code {self.superlink.returncode}; "
                    f"log:\n{self._tail(self.root / 'superlink.log')}")
            try:
                with urllib.request.urlopen(url, timeout=2.0, context=ctx) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise DeploymentError(
                    f"the SuperLink did not answer {url} within {self.start_timeout} s")
            time.sleep(0.2)

    def flwr(self, *args: str, timeout: float = 60.0) -> str:
        """Run the ``flwr`` command line against this deployment; its stdout."""
        try:
            res = subprocess.run(
                [_flower_bin("flwr"), *args], env=self.env, cwd=self.root,
                capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise DeploymentError(f"flwr {' '.join(args)} ran past {timeout} s") from exc
        if res.returncode != 0:
            raise DeploymentError(
                f"flwr {' '.join(args)} exited with code {res.returncode}: "
                f"{res.stdout.decode(errors='replace')[-2000:]}"
                f"{res.stderr.decode(errors='replace')[-2000:]}")
        return res.stdout.decode(errors="replace")

    def _register(self, public_key: Path) -> int:
        out = self.flwr("supernode", "register", str(public_key), CONNECTION, "--format", "json")
        data = json.loads(out)
        node_id = data.get("node-id", data.get("node_id"))
        if not isinstance(node_id, int):
            raise DeploymentError(f"flwr supernode register gave no node id: {out[:500]}")
        return node_id

    def online_nodes(self) -> set[int]:
        """Node ids the SuperLink reports online."""
        data = json.loads(self.flwr("supernode", "ls", CONNECTION, "--format", "json"))
        return {int(n["node-id"]) for n in data.get("nodes", [])
                if str(n.get("status", "")).lower() == "online"}

    def wait_nodes(self, count: int) -> None:
        """Block until ``count`` nodes are online (at most ``start_timeout`` s)."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            dead = [h for h in self.handles if h.process is not None and not h.alive]
            if dead:
                h = dead[0]
                log = self._tail(h.log) if h.log else ""
                code = h.process.returncode if h.process else None
                raise DeploymentError(
                    f"SuperNode {h.index} exited with code {code}; log:\n{log}")
            if len(self.online_nodes()) >= count:
                return
            if time.monotonic() > deadline:
                raise DeploymentError(
                    f"only {len(self.online_nodes())} of {count} SuperNodes came online within "
                    f"{self.start_timeout} s")
            time.sleep(0.5)

    @staticmethod
    def _tail(path: Path, limit: int = 3000) -> str:
        try:
            return path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    # --------------------------------------------------------------- runs
    def run_app(self, app_dir: Path, run_config: Mapping[str, str | int | float] | None = None,
                *, timeout: float = 600.0,
                on_line: Callable[[str], None] | None = None) -> str:
        """``flwr run APP --stream`` against this deployment; returns its output.

        ``run_config`` overrides the app's ``[tool.flwr.app.config]`` keys;
        ``on_line`` sees each output line as it arrives. The ``flwr`` process
        is stopped (by pid) if it runs past ``timeout`` seconds or on any error.
        """
        args = [_flower_bin("flwr"), "run", str(app_dir), CONNECTION, "--stream"]
        for k, v in (run_config or {}).items():
            val = json.dumps(v) if isinstance(v, str) else repr(v)
            args += ["--run-config", f"{k}={val}"]
        proc = subprocess.Popen(args, env=self.env, cwd=self.root, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        self._procs.append(proc)
        lines: queue.Queue[bytes | None] = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                lines.put(raw)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        out: list[str] = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DeploymentError(f"flwr run {app_dir} ran past {timeout} s")
                try:
                    raw = lines.get(timeout=min(left, 1.0))
                except queue.Empty:
                    continue
                if raw is None:
                    break
                line = raw.decode(errors="replace").rstrip("\n")
                out.append(line)
                if on_line is not None:
                    on_line(line)
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            if proc.poll() is None:
                _signal_group(proc, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        text = "\n".join(out)
        if code != 0:
            raise DeploymentError(f"flwr run exited with code {code}: {text[-3000:]}")
        return text

    # ------------------------------------------------------------- stopping
    def kill_node(self, index: int) -> None:
        """SIGKILL SuperNode ``index`` and the ClientApp processes it started."""
        h = self.handles[index]
        if h.process is not None:
            family = _descendants({h.process.pid})
            _signal_group(h.process, signal.SIGKILL)
            for pid in family:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                h.process.wait(timeout=10)

    def stop(self, grace: float = 5.0) -> None:
        """Stop every process this deployment started (SIGTERM, then SIGKILL).

        Flower detaches some helpers into their own sessions (the SuperExec
        that starts ServerApp / ClientApp processes), so the descendants of
        each started process are collected first and signalled by pid too.
        """
        procs = list(reversed(self._procs))
        family = _descendants({p.pid for p in procs})
        for p in procs:
            if p.poll() is None:
                _signal_group(p, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
        for pid in _descendants({p.pid for p in procs if p.poll() is None}) | family:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + grace
        while time.monotonic() < end and any(_alive(pid) for pid in family):
            time.sleep(0.1)
        for p in procs:
            # the group may hold children even after its leader exited
            _signal_group(p, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
        for pid in family:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
        self._procs.clear()
        if self._own_dir and not self.keep_logs:
            shutil.rmtree(self.root, ignore_errors=True)

    def logs(self) -> Iterator[tuple[str, str]]:
        """``(name, tail)`` of every log file, for error reports."""
        for p in sorted(self.root.glob("*.log")):
            yield p.name, self._tail(p)


class Terminated(SystemExit):
    """Raised in the main thread on SIGTERM while a deployment runs, so the
    ``with`` block stops every process it started before the program exits
    (exit status 128 + SIGTERM, as if the signal had killed it)."""


_NOT_INSTALLED = object()


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated(128 + signum)


def _stop_on_sigterm() -> object:
    """Turn SIGTERM into :class:`Terminated` (main thread only: elsewhere
    signals cannot be handled). Returns the previous handler for
    :func:`_restore_sigterm`. Ctrl-C needs nothing: it already raises
    ``KeyboardInterrupt`` in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return _NOT_INSTALLED
    return signal.signal(signal.SIGTERM, _on_sigterm)


def _restore_sigterm(previous: object) -> None:
    if previous is _NOT_INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, previous)  # type: ignore[arg-type]


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the process group led by ``proc`` (which we started in its own session)."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            if proc.poll() is None:
                proc.send_signal(sig)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def _descendants(roots: set[int]) -> set[int]:
    """Pids of every live descendant of ``roots`` (Linux ``/proc``; empty elsewhere)."""
    parent: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return set()
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            parent[int(name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    found: set[int] = set()
    frontier = set(roots)
    while frontier:
        nxt = {pid for pid, pp in parent.items() if pp in frontier and pid not in found}
        found |= nxt
        frontier = nxt
    return found
