"""`ftk bench --device adb --adb-client adb`: the `adb` command (Debian `adb` 34.0.5) against the sandboxed adbd.

The adb client talks to an adb *server*. Each test starts its own (``adb nodaemon server``, so its PID is ours) on
``tcp:localhost:<free port outside 5555-5585>`` (the server binds 127.0.0.1 only), with HOME in a tmp folder (the
server writes its key to ``~/.android``); ftk's ``adb`` subprocesses find it through ``ADB_SERVER_SOCKET``. The
fixture stops it with ``adb kill-server`` and then by PID.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bench.adbd_sandbox import free_loopback_port
from toolkit.bench.adb import AdbBenchOptions, CommandAdbClient, bench_adb
from toolkit.errors import DeviceError

pytestmark = pytest.mark.adb


class AdbServer:
    def __init__(self, tmp: Path):
        self.port = free_loopback_port()
        self.socket_spec = f"tcp:localhost:{self.port}"  # "localhost": adb treats 127.0.0.1 as a remote server
        self.home = tmp / "adb-home"
        self.home.mkdir()
        self.log_path = tmp / "adb-server.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> "AdbServer":
        env = dict(os.environ, ADB_SERVER_SOCKET=self.socket_spec, HOME=str(self.home))
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([shutil.which("adb") or "adb", "nodaemon", "server"], env=env,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"adb server exited: {self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"adb server did not listen on {self.socket_spec} within {timeout}s")

    def adb(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        env = dict(os.environ, ADB_SERVER_SOCKET=self.socket_spec)
        return subprocess.run(["adb", *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.adb("kill-server", timeout=10)
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture()
def adb_server(tmp_path, monkeypatch):
    if shutil.which("adb") is None:
        pytest.skip("adb client not installed (run scripts/setup-system.sh: Debian package adb from bookworm-backports)")
    server = AdbServer(tmp_path).start()
    # ftk's adb subprocesses inherit this: they use our server, never start one on the default port 5037.
    monkeypatch.setenv("ADB_SERVER_SOCKET", server.socket_spec)
    try:
        yield server
    finally:
        server.stop()
    assert server.proc.poll() is not None


def run_ftk(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from toolkit.cli import main; main()", *args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def test_ftk_bench_with_the_adb_command_end_to_end(adbd, adb_server, tiny_tflite, tmp_path, standin_runner,
                                                    device_python):
    out = tmp_path / "out"
    started = time.perf_counter()
    proc = run_ftk("bench", str(tiny_tflite), "--device", "adb", "--adb-client", "adb", "--serial", adbd.serial,
                   "--threads", "1,2", "--warmup", "1", "--runs", "10", "--repeats", "2", "--cooldown", "0.1",
                   "--benchmark-binary", str(standin_runner), "--device-python", device_python, "--out", str(out))
    wall = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((out / "bench.json").read_text())
    assert data["complete"] is True and data["device"] == "adb" and not data["errors"]
    entries = data["entries"]
    assert [(e["device"], e["threads"]) for e in entries] == [(adbd.serial, 1), (adbd.serial, 2)]
    for e in entries:
        assert e["backend"] == "benchmark_model:standin_benchmark_model.py"
        lat = e["latency"]
        assert lat["n"] == 20 and 0 < lat["min_ms"] <= lat["median_ms"] <= lat["max_ms"]
        assert e["extra"]["harness_rc"] == 0 and all(r["rc"] == 0 for r in e["extra"]["repeats"])
        graph = e["extra"]["repeats"][0]["output"]["graph"]
        assert graph.startswith("/data/local/tmp/ftk/") and graph.endswith("/model_float32.tflite")
        assert e["extra"]["repeats"][0]["output"]["num_threads"] == e["threads"]
    device = data["devices"][0]
    assert device["error"] is None and device["facts"]["abi"] == "x86_64"
    assert device["push"]["bytes"] > tiny_tflite.stat().st_size and device["push"]["mb_per_s"] > 0
    assert len(device["pulled"]) == 4 and "Inference timings in us" in Path(device["pulled"][0]).read_text()
    assert (out / "latency.png").is_file()
    # the adb command connected through our server, and the device's work folder is gone
    listed = adb_server.adb("devices").stdout
    assert f"{adbd.serial}\tdevice" in listed
    client = CommandAdbClient(adbd.serial)
    listing, rc = client.shell("ls -A /data/local/tmp/ftk")
    assert rc == 0 and listing.strip() == ""
    print(f"ftk bench --device adb --adb-client adb: {wall:.2f}s wall, push {device['push']['mb_per_s']} MB/s, "
          f"{device['wall_s']}s on the device")


def test_quoting_and_exit_codes_through_the_adb_command(adbd, adb_server, tiny_tflite, tmp_path, standin_runner,
                                                        device_python):
    odd_dir = tmp_path / "it's a \"model\" dir"
    odd_dir.mkdir()
    odd = odd_dir / "face net; $(touch pwned) 'v1'.tflite"
    odd.write_bytes(tiny_tflite.read_bytes())
    opts = AdbBenchOptions(threads=(1,), warmup=1, runs=5, repeats=1, cooldown_s=0, benchmark_binary=standin_runner,
                           device_python=device_python, adb_client="adb", pull_to=tmp_path / "logs")
    runs = bench_adb([adbd.serial], [odd], opts)
    assert runs[0].error is None, runs[0].error
    entry = runs[0].entries[0]
    assert entry.latency is not None and entry.latency.n == 5
    assert entry.extra["repeats"][0]["output"]["graph"].endswith("/face net; $(touch pwned) 'v1'.tflite")
    client = CommandAdbClient(adbd.serial)
    out, rc = client.shell("ls / /data/local/tmp | grep -c pwned")
    assert out.strip() == "0" and rc == 1  # the $(...) in the name never ran (and grep -c found nothing: exit 1)
    echoed, rc = client.shell(f"printf '%s' {shlex.quote(odd.name)}")
    assert rc == 0 and echoed == odd.name
    _, rc = client.shell("exit 7")
    assert rc == 7  # exit statuses come back through the __FTK_RC marker
    multi, rc = client.shell("echo one\necho two >&2\nfalse")
    assert multi.splitlines() == ["one", "two"] and rc == 1  # device stderr joins the output, as over adb-shell
    # push/pull keep odd names verbatim (the sync protocol, no shell), and push sets the mode
    remote = "/data/local/tmp/odd dir/it's $(x).bin"
    client.shell(f"mkdir -p {shlex.quote(str(Path(remote).parent))}")
    client.push(odd, remote, 0o640)
    mode, rc = client.shell(f"stat -c %a {shlex.quote(remote)}")
    assert rc == 0 and mode.strip() == "640"
    back = tmp_path / "pulled $(y).bin"
    client.pull(remote, back)
    assert back.read_bytes() == odd.read_bytes()


def test_device_gone_is_a_device_error(adbd, adb_server):
    client = CommandAdbClient(adbd.serial)
    assert client.shell("echo up") == ("up", 0)
    adbd.stop()
    started = time.perf_counter()
    with pytest.raises(DeviceError, match=adbd.serial):
        client.shell("echo still there?", timeout_s=30)
    assert time.perf_counter() - started < 30
    with pytest.raises(DeviceError, match=r"cannot connect to device 127\.0\.0\.1:\d+: failed to connect"):
        CommandAdbClient(f"127.0.0.1:{free_loopback_port()}")


def test_no_adb_command_is_that_devices_error(tmp_path, monkeypatch, tiny_tflite):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no adb
    runs = bench_adb(["R58M00TEST", "127.0.0.1:5"], [tiny_tflite], AdbBenchOptions(adb_client="adb"))
    assert [r.serial for r in runs] == ["R58M00TEST", "127.0.0.1:5"]
    assert all("the adb command is not on PATH" in r.error and not r.entries for r in runs)
