"""The real AOSP adbd, sandboxed for tests: private network/mount/pid namespaces, no vsock, a loopback bridge.

adbd listens on all interfaces and on AF_VSOCK with no way to change that, so it is never started in the host
namespace. It runs as ``no_vsock_exec.py unshare --net --mount --pid --fork --kill-child sh -c ...``: inside, the
loopback is brought up, a tmpfs is mounted at /data (where ``/data/local/tmp`` lives, as on a phone) and adbd
listens on ``ADBD_PORT`` in its own network namespace. The test reaches it through :class:`NetnsBridge`: a TCP
listener on ``127.0.0.1:<free port outside 5555-5585>`` in the test's namespace whose outgoing connections are
opened from a thread that has ``setns``-ed into adbd's network namespace. :meth:`AdbdSandbox.stop` kills the
namespace by PID (``--kill-child`` and the PID namespace take adbd and its shells with it).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLONE_NEWNET = 0x40000000
ADBD_INNER_PORT = 5555  # inside the private namespace only
# Emulator ports the adb server scans; a device on one of these is listed twice.
EMULATOR_PORTS = range(5555, 5586)

INNER_SCRIPT = r"""
set -e
ip link set lo up
mkdir -p /data
mount -t tmpfs -o size=512m,mode=0755 ftk-adbd-data /data
mkdir -p /data/local/tmp
cd /
exec "$ADBD" 
"""


def find_adbd() -> str | None:
    for candidate in (shutil.which("adbd"), "/usr/lib/android-sdk/platform-tools/adbd"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def sandbox_unavailable_reason() -> str | None:
    """Why the sandboxed adbd cannot run here, or None."""
    if sys.platform != "linux":
        return "adbd sandbox needs Linux namespaces"
    if find_adbd() is None:
        return "adbd not installed (run scripts/setup-system.sh: Debian package adbd from bookworm-backports)"
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} not found (util-linux / iproute2)"
    if os.geteuid() != 0:
        return "creating network namespaces for adbd needs root"
    return None


def free_loopback_port() -> int:
    """A free TCP port on 127.0.0.1 that the adb server would not mistake for an emulator."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in EMULATOR_PORTS:
            return port
    raise RuntimeError("no free loopback port outside 5555-5585")


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), f"setns: {os.strerror(ctypes.get_errno())}")


def connect_in_netns(netns_path: str, address: tuple[str, int], timeout: float = 5.0) -> socket.socket:
    """A TCP connection opened from inside another network namespace (a socket keeps the netns it was made in).

    setns(CLONE_NEWNET) moves only the calling thread, so a short-lived thread does it and ends; the socket it
    made is then used from anywhere in this process.
    """
    result: dict[str, object] = {}

    def dial() -> None:
        try:
            with open(netns_path, "rb") as ns:
                _setns(ns.fileno())
            sock = socket.create_connection(address, timeout=timeout)
            sock.settimeout(None)
            result["sock"] = sock
        except OSError as exc:
            result["error"] = exc

    t = threading.Thread(target=dial, daemon=True)
    t.start()
    t.join(timeout + 1)
    if "sock" not in result:
        raise result.get("error") or OSError("connect in netns timed out")  # type: ignore[misc]
    return result["sock"]  # type: ignore[return-value]


class NetnsBridge:
    """127.0.0.1:<port> here -> 127.0.0.1:<inner port> inside a network namespace, one thread pair a connection."""

    def __init__(self, netns_path: str, inner_port: int, port: int | None = None):
        self.netns_path = netns_path
        self.inner_port = inner_port
        self.port = port or free_loopback_port()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(8)
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, name="adbd-bridge", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = connect_in_netns(self.netns_path, ("127.0.0.1", self.inner_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._closed.set()
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            for s in self._sockets:
                try:
                    s.close()
                except OSError:
                    pass


class AdbdSandbox:
    """Start with :meth:`start`; ``serial`` is ``127.0.0.1:<bridge port>``; :meth:`stop` kills it by PID."""

    def __init__(self, log_path: Path):
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.bridge: NetnsBridge | None = None

    @property
    def serial(self) -> str:
        assert self.bridge is not None
        return f"127.0.0.1:{self.bridge.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 15.0) -> "AdbdSandbox":
        env = dict(os.environ, ADBD_PORT=str(ADBD_INNER_PORT), ADBD=find_adbd() or "adbd")
        argv = [sys.executable, str(HERE / "no_vsock_exec.py"),
                "unshare", "--net", "--mount", "--pid", "--fork", "--kill-child",
                "sh", "-c", INNER_SCRIPT]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        # unshare itself enters the new network namespace before forking, so its /proc entry names that netns.
        netns = f"/proc/{self.proc.pid}/ns/net"
        deadline = time.monotonic() + timeout
        host_netns = os.readlink("/proc/self/ns/net")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"adbd sandbox exited early: {self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                if os.readlink(netns) != host_netns:
                    sock = connect_in_netns(netns, ("127.0.0.1", ADBD_INNER_PORT), timeout=1.0)
                    sock.close()
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError(f"adbd did not listen within {timeout}s: {self.log_path.read_text(errors='replace')[-2000:]}")
        self.bridge = NetnsBridge(netns, ADBD_INNER_PORT)
        return self

    def stop(self) -> None:
        """Kill the namespace by PID: unshare --kill-child takes the PID namespace (adbd, its shells) with it."""
        if self.proc is not None and self.proc.poll() is None:
            # The namespace's init (adbd) by PID too, in case the parent-death signal does not reach it.
            try:
                children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            except OSError:
                children = []
            for pid in [self.proc.pid, *map(int, children)]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait(timeout=10)
        if self.bridge is not None:
            self.bridge.close()
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None
