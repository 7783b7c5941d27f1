"""A real Kubernetes control plane on loopback, for tests and demos of the AKS path.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler run as local processes (built from
Go modules by scripts/bootstrap-kubernetes). The nodes are either one real node (`real_node`:
containerd, kubelet and kube-proxy run the pods, and a registry holds their images; see
`modelplane.local_node`) or kwok's fake ones, for scale tests: Deployments are scheduled and their
pods become Ready without a container runtime. The API server speaks TLS with a self-signed CA,
authenticates an admin by a static token and authorises with RBAC.

    python -m modelplane.local_cluster up              # a real node; prints the kubeconfig path
    python -m modelplane.local_cluster up --fake-nodes # kwok's nodes instead; Ctrl-C stops either

kwok is built only when asked for (`scripts/bootstrap-kubernetes --with-kwok`): the suite uses the real node.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from modelplane import local_metrics
from modelplane.engine import state_root
from modelplane.local_node import SERVICE_CIDR, ClusterError, LocalNode, node_dir

CACHE = Path(os.environ.get("MODELPLANE_CACHE", Path.home() / ".cache" / "modelplane"))
# What scripts/bootstrap-kubernetes builds; the folder name carries the versions.
KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"
CONTROL_PLANE_DIR = CACHE / "kubernetes" / f"{KUBERNETES_VERSION}-etcd{ETCD_VERSION}"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
# kwok (fake nodes) is built only when asked for: `scripts/bootstrap-kubernetes --with-kwok`.
KWOK_DIR = CACHE / "kubernetes" / f"kwok-{KWOK_VERSION}"
POD_CIDR = "10.244.0.0/24"
# kwok manages only nodes carrying this annotation (the convention of its own docs).
FAKE_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
# The name the API server presents to aggregated API servers (their request-header authentication).
FRONT_PROXY_USER = "front-proxy-client"


def control_plane_dir() -> Path:
    """`$MODELPLANE_KUBE_DIR` when set, else the bootstrap's cache folder."""
    configured = os.environ.get("MODELPLANE_KUBE_DIR")
    return Path(configured) if configured else CONTROL_PLANE_DIR


def kwok_dir() -> Path:
    """`$MODELPLANE_KWOK_DIR` when set, else the bootstrap's cache folder (bin/kwok and its stages/)."""
    configured = os.environ.get("MODELPLANE_KWOK_DIR")
    return Path(configured) if configured else KWOK_DIR


def missing_binaries(root: Path | None = None) -> list[str]:
    bin_dir = (root or control_plane_dir()) / "bin"
    return [name for name in BINARIES if not os.access(bin_dir / name, os.X_OK)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Credentials:
    """Files the control plane and its clients share."""

    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    service_account_key: Path
    service_account_public_key: Path
    token_file: Path
    admin_token: str
    kubelet_client_cert: Path
    """The API server's client certificate towards kubelets (logs, exec), which trust the CA."""
    kubelet_client_key: Path
    proxy_client_cert: Path
    """The API server's certificate towards aggregated API servers (metrics-server)."""
    proxy_client_key: Path
    metrics_client_cert: Path
    """metrics-server's certificate: towards the kubelets, and an admin (system:masters) of the API server."""
    metrics_client_key: Path


def _pem_key(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _write_private(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _certificate(
    subject: str,
    issuer: Any,
    public_key: Any,
    signing_key: Any,
    extensions: Sequence[Any],
    organisation: str | None = None,
) -> Any:
    """A certificate valid for two days (a throwaway cluster's lifetime), backdated for clock skew."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    organisation_name = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation)] if organisation else []
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject), *organisation_name]))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signing_key, hashes.SHA256())


def _certificate_authority() -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelplane-local-ca")])
    usage = x509.KeyUsage(True, False, False, False, False, True, True, False, False)
    extensions = [(x509.BasicConstraints(ca=True, path_length=0), True), (usage, True)]
    return key, _certificate("modelplane-local-ca", name, key.public_key(), key, extensions)


def _serving_certificate(ca_key: Any, ca: Any) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    names = x509.SubjectAlternativeName(
        [
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes.default.svc"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
        ]
    )
    usage = x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH])
    return key, _certificate("kube-apiserver", ca.subject, key.public_key(), ca_key, [(names, False), (usage, False)])


def _client_certificate(ca_key: Any, ca: Any, user: str, group: str | None = None) -> tuple[Any, Any]:
    """A client certificate for `user` (in `group`, the certificate's organisation, when given)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    usage = x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH])
    certificate = _certificate(user, ca.subject, key.public_key(), ca_key, [(usage, False)], organisation=group)
    return key, certificate


def _certificate_pair(folder: Path, name: str, pair: tuple[Any, Any]) -> tuple[Path, Path]:
    """`name`.crt and `name`.key in `folder`, readable by their owner only."""
    from cryptography.hazmat.primitives import serialization

    key, certificate = pair
    return (
        _write_private(folder / f"{name}.crt", certificate.public_bytes(serialization.Encoding.PEM)),
        _write_private(folder / f"{name}.key", _pem_key(key)),
    )


def write_credentials(folder: Path) -> Credentials:
    """A CA, a serving certificate for 127.0.0.1/localhost, the client certificates of the API server
    (towards kubelets and aggregated API servers) and of metrics-server, a service-account key pair and
    an admin token in group system:masters (RBAC's superuser group)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca = _certificate_authority()
    serving_cert, serving_key = _certificate_pair(folder, "apiserver", _serving_certificate(ca_key, ca))
    kubelet_client = _client_certificate(ca_key, ca, "kube-apiserver-kubelet-client")
    kubelet_client_cert, kubelet_client_key = _certificate_pair(folder, "kubelet-client", kubelet_client)
    proxy_client_cert, proxy_client_key = _certificate_pair(
        folder, "front-proxy-client", _client_certificate(ca_key, ca, FRONT_PROXY_USER)
    )
    metrics_client = _client_certificate(ca_key, ca, "system:metrics-server", "system:masters")
    metrics_client_cert, metrics_client_key = _certificate_pair(folder, "metrics-server-client", metrics_client)
    account_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    account_public = account_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = secrets.token_urlsafe(32)
    return Credentials(
        ca_cert=_write_private(folder / "ca.crt", ca.public_bytes(serialization.Encoding.PEM)),
        serving_cert=serving_cert,
        serving_key=serving_key,
        service_account_key=_write_private(folder / "service-account.key", _pem_key(account_key)),
        service_account_public_key=_write_private(folder / "service-account.pub", account_public),
        token_file=_write_private(folder / "tokens.csv", f'{token},admin,admin,"system:masters"\n'.encode()),
        admin_token=token,
        kubelet_client_cert=kubelet_client_cert,
        kubelet_client_key=kubelet_client_key,
        proxy_client_cert=proxy_client_cert,
        proxy_client_key=proxy_client_key,
        metrics_client_cert=metrics_client_cert,
        metrics_client_key=metrics_client_key,
    )


def kubeconfig_text(
    server: str, credentials: Credentials, name: str = "modelplane-local", user: dict[str, str] | None = None
) -> str:
    """A kubeconfig for `server`: the admin token unless `user` (kubeconfig user fields) is given."""
    import base64

    ca = base64.b64encode(credentials.ca_cert.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": "admin", "user": user or {"token": credentials.admin_token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "admin"}}],
        "current-context": name,
    }
    return yaml.safe_dump(config, sort_keys=False)


def fake_node(name: str) -> dict[str, Any]:
    """A Node that kwok keeps Ready: room for many replicas of a scoring service."""
    key, value = FAKE_NODE_ANNOTATION
    capacity = {"cpu": "32", "memory": "128Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {key: value, "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"},
        },
        "status": {"allocatable": capacity, "capacity": capacity},
    }


@dataclass
class LocalCluster:
    """One control plane under `workdir`; `start()` then `stop()` (or use it as a context manager)."""

    workdir: Path
    nodes: int = 2
    """kwok's fake nodes."""
    real_node: bool = False
    """One real node (containerd, kubelet, kube-proxy) and a registry."""
    metrics_server: bool = True
    """On a real node, start metrics-server with it (the HPAs' metrics); `start_metrics_server()` later otherwise."""
    root: Path = field(default_factory=control_plane_dir)
    log: IO[str] | None = None
    """Progress lines go here (stderr by default)."""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    server: str = ""
    startup_seconds: float = 0.0
    node: LocalNode | None = None
    credentials: Credentials | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    def _say(self, message: str) -> None:
        print(f"[local-cluster] {message}", file=self.log or sys.stderr, flush=True)

    def spawn(
        self,
        name: str,
        args: Sequence[str],
        binary: Path | None = None,
        env: dict[str, str] | None = None,
        keep_fds: Sequence[int] = (),
    ) -> None:
        """Start one of the cluster's processes (the control plane's binary `name` unless `binary`);
        `keep_fds`: open files it inherits (a lock it then holds too)."""
        log_file = (self.workdir / "logs" / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            [str(binary or self.root / "bin" / name), *args],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
            pass_fds=tuple(keep_fds),
        )
        log_file.close()

    @staticmethod
    def free_port() -> int:
        return free_port()

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.workdir / "logs" / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
                raise ClusterError(f"{name} exited with {process.returncode}:\n" + "\n".join(tail))

    def wait_for(self, what: str, ready: Any, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if ready():
                    return
            except (OSError, ValueError, subprocess.SubprocessError, ClusterError):
                pass  # not answering yet
            time.sleep(0.25)
        raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}; logs in {self.workdir / 'logs'}")

    def kubectl(self, *args: str, check: bool = True, input_text: str | None = None) -> str:
        """Run the bundled kubectl against this cluster; its stdout."""
        result = subprocess.run(
            [str(self.root / "bin" / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input_text,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def _api_ready(self, credentials: Credentials) -> bool:
        context = ssl.create_default_context(cafile=str(credentials.ca_cert))
        request = urllib.request.Request(
            f"{self.server}/readyz", headers={"Authorization": f"Bearer {credentials.admin_token}"}
        )
        with urllib.request.urlopen(request, context=context, timeout=2) as response:
            return bool(response.status == 200)

    def start(self) -> LocalCluster:
        missing = missing_binaries(self.root)
        if missing:
            raise ClusterError(f"missing {', '.join(missing)} in {self.root / 'bin'}: run scripts/bootstrap-kubernetes")
        kwok = kwok_dir() / "bin" / "kwok"
        if self.nodes and not os.access(kwok, os.X_OK):
            raise ClusterError(f"fake nodes need kwok (no {kwok}): run scripts/bootstrap-kubernetes --with-kwok")
        started = time.monotonic()
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        credentials = self.credentials = write_credentials(self.workdir / "pki")
        try:
            self._start(credentials)
            if self.real_node:
                self._say("starting a real node: containerd, kubelet, kube-proxy and a registry")
                self.node = LocalNode(self, node_dir(KUBERNETES_VERSION))
                self.node.start()
                if self.metrics_server:
                    self.start_metrics_server()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        kinds = [f"{self.nodes} kwok nodes"] * bool(self.nodes) + ["a real node"] * self.real_node
        nodes = " and ".join(kinds) or "no nodes"
        self._say(f"ready in {self.startup_seconds:.1f} s: {self.server} ({nodes})")
        return self

    def start_metrics_server(self) -> None:
        """metrics-server for the real node's pods (metrics.k8s.io), registered with the aggregator."""
        if self.node is None or self.credentials is None:
            raise ClusterError("metrics-server needs a started cluster with a real node")
        self._say("starting metrics-server")
        local_metrics.start_metrics_server(self, self.node.root / "bin" / "metrics-server", self.credentials)

    def _start(self, credentials: Credentials) -> None:
        etcd = self._start_etcd()
        self._start_apiserver(etcd, credentials)
        self._start_controllers(credentials)
        self._add_nodes()

    def _start_etcd(self) -> str:
        etcd_port, peer_port = free_port(), free_port()
        etcd = f"http://127.0.0.1:{etcd_port}"
        self._say("starting etcd")
        self.spawn(
            "etcd",
            [
                "--name=local",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd}",
                f"--advertise-client-urls={etcd}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=local=http://127.0.0.1:{peer_port}",
                "--log-level=warn",
                # A throwaway cluster: durability is not worth the fsync latency.
                "--unsafe-no-fsync",
            ],
        )
        self.wait_for("etcd", lambda: urllib.request.urlopen(f"{etcd}/health", timeout=2).status == 200)
        return etcd

    def _start_apiserver(self, etcd: str, credentials: Credentials) -> None:
        api_port = free_port()
        self.server = f"https://127.0.0.1:{api_port}"
        self._say("starting kube-apiserver")
        self.spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={etcd}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={self.workdir / 'pki'}",
                f"--tls-cert-file={credentials.serving_cert}",
                f"--tls-private-key-file={credentials.serving_key}",
                f"--kubelet-client-certificate={credentials.kubelet_client_cert}",
                f"--kubelet-client-key={credentials.kubelet_client_key}",
                # The aggregation layer, for metrics-server: requests are proxied with a client
                # certificate and the caller named in headers, straight to the endpoint's address.
                f"--requestheader-client-ca-file={credentials.ca_cert}",
                f"--requestheader-allowed-names={FRONT_PROXY_USER}",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={credentials.proxy_client_cert}",
                f"--proxy-client-key-file={credentials.proxy_client_key}",
                "--enable-aggregator-routing=true",
                # The node's address, never its name: no lookup leaves the machine.
                "--kubelet-preferred-address-types=InternalIP",
                f"--client-ca-file={credentials.ca_cert}",
                f"--token-auth-file={credentials.token_file}",
                "--authorization-mode=RBAC",
                f"--service-account-key-file={credentials.service_account_public_key}",
                f"--service-account-signing-key-file={credentials.service_account_key}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=false",
                "--enable-priority-and-fairness=false",
            ],
        )
        self.wait_for("kube-apiserver /readyz", lambda: self._api_ready(credentials))
        self.kubeconfig.write_text(kubeconfig_text(self.server, credentials))
        self.kubeconfig.chmod(0o600)

    def _start_controllers(self, credentials: Credentials) -> None:
        kubeconfig = f"--kubeconfig={self.kubeconfig}"
        self._say(
            "starting kube-controller-manager, kube-scheduler and kwok"
            if self.nodes
            else "starting kube-controller-manager and kube-scheduler"
        )
        self.spawn(
            "kube-controller-manager",
            [
                kubeconfig,
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--leader-elect=false",
                f"--service-account-private-key-file={credentials.service_account_key}",
                f"--root-ca-file={credentials.ca_cert}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--controllers=*",
            ],
        )
        self.spawn(
            "kube-scheduler",
            [kubeconfig, "--bind-address=127.0.0.1", f"--secure-port={free_port()}", "--leader-elect=false"],
        )
        if self.nodes:
            self._start_kwok(kubeconfig)

    def _start_kwok(self, kubeconfig: str) -> None:
        stages = sorted(str(path) for path in (kwok_dir() / "stages").glob("*.yaml"))
        key, value = FAKE_NODE_ANNOTATION
        self.spawn(
            "kwok",
            [
                kubeconfig,
                *(f"--config={stage}" for stage in stages),
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={key}={value}",
                f"--cidr={POD_CIDR}",
                "--node-ip=10.240.0.1",
                f"--server-address=127.0.0.1:{free_port()}",
            ],
            binary=kwok_dir() / "bin" / "kwok",
        )

    def _add_nodes(self) -> None:
        self.wait_for(
            "the default service account", lambda: "default" in self.kubectl("get", "serviceaccounts", "-o", "name")
        )
        if not self.nodes:
            return
        nodes = [fake_node(f"kwok-node-{index}") for index in range(self.nodes)]
        self.kubectl("apply", "-f", "-", input_text=json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes}))
        self.wait_for("Ready nodes", self._nodes_ready)

    def _nodes_ready(self) -> bool:
        nodes = self.get_json("nodes")["items"]
        ready = [
            node
            for node in nodes
            if any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))
        ]
        return len(ready) == self.nodes

    def stop(self) -> None:
        if self.node is not None:
            self.node.stop()
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()
        if self.node is not None:
            self.node.clean_up()
            self.node = None

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    fake = "--fake-nodes" in args
    args = [arg for arg in args if arg != "--fake-nodes"]
    if args[:1] != ["up"]:
        print("usage: python -m modelplane.local_cluster up [WORKDIR] [--fake-nodes]", file=sys.stderr)
        return 2
    workdir = Path(args[1]) if len(args) > 1 else state_root() / "local-cluster"
    shutil.rmtree(workdir, ignore_errors=True)
    cluster = LocalCluster(workdir, nodes=2 if fake else 0, real_node=not fake)
    try:
        cluster.start()
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"kubeconfig: {cluster.kubeconfig}\nkubectl:    {cluster.root / 'bin' / 'kubectl'}\nCtrl-C stops the cluster."
    )
    # Ctrl-C or a plain `kill` stop the cluster cleanly, even when started in the background by a shell
    # that ignores SIGINT for its background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        # A second signal must not leave the node's containers, mounts and rules behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
