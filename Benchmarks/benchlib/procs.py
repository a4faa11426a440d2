"""Processes under test: baton, Server::Starter, the load tool; readings from /proc.

Every process is started in its own session and stopped by its process group, bounded in time.
"""
import json
import os
import signal
import socket
import subprocess
import time


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port, timeout=0.5):
    """True when GET / on 127.0.0.1:port gets an HTTP answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return s.recv(16).startswith(b"HTTP/1.")
    except OSError:
        return False


def wait_until(predicate, timeout, what, step=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def stop_group(process, timeout=15.0, sig=signal.SIGTERM):
    """Sends `sig` to the process group of `process`, waits, SIGKILLs the group at the deadline."""
    if process is None:
        return
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def status_kb(pid):
    """VmRSS, RssAnon, RssFile, VmHWM of `pid` in kB."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                fields[key] = int(value.split()[0])
    return fields


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def children(pid):
    """(pid, state) of every process whose parent is `pid`; state "Z" is a zombie."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                # The command name is in parentheses and may hold spaces: split after its end.
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append((int(name), fields[0]))
    return found


def cpu_ns(pid):
    """CPU time of every thread of `pid` (scheduler accounting, nanoseconds)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def cpu_ticks_ns(pid):
    """utime + stime from /proc/PID/stat, in nanoseconds (clock-tick resolution; a cross-check)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    hz = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // hz


def context_switches(pid):
    total = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


class Baton:
    """A `baton run` master with a generated configuration file, its log in the work directory."""

    def __init__(self, bin_dir, work, name, listeners, command, workers=1, handoff="listen-fds",
                 drain_timeout="10s", extra=""):
        self.bin_dir = bin_dir
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir, exist_ok=True)
        self.config = os.path.join(self.dir, "baton.toml")
        self.control = os.path.join(self.dir, "control.sock")
        self.log_path = os.path.join(self.dir, "baton.log")
        lines = []
        for listener_name, address in listeners:
            lines += ["[[listener]]", f'name = "{listener_name}"', f'address = "{address}"', "backlog = 4096", ""]
        lines += ["[program]", f'name = "{name}"', "command = " + json.dumps(command), f"workers = {workers}",
                  f'handoff = "{handoff}"', f'drain_timeout = "{drain_timeout}"', 'ready_timeout = "60s"', extra]
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.process = None
        self.started_at = None

    def start(self, timeout=60, step=0.01):
        log = open(self.log_path, "w")
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            [os.path.join(self.bin_dir, "baton"), "run", "--config", self.config, "--control", self.control],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        wait_until(lambda: self.serving_generation() >= 1 or self.process.poll() is not None, timeout,
                   f"baton ({self.log_path}) to serve", step=step)
        if self.process.poll() is not None:
            raise RuntimeError(f"baton exited with {self.process.returncode}; see {self.log_path}")
        return self

    @property
    def pid(self):
        return self.process.pid

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def serving_generation(self):
        best = 0
        for line in self.log().splitlines():
            if " serving: " in line and "gen=" in line:
                best = max(best, int(line.split("gen=")[1].split()[0]))
        return best

    def request(self, request, timeout=30):
        """One request on the control socket; returns its reply (events skipped)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.control)
            s.sendall((json.dumps(dict(v=1, id=1, **request)) + "\n").encode())
            buffer = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError("control socket closed")
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    message = json.loads(line)
                    if "ok" in message:
                        return message

    def stop(self):
        stop_group(self.process)


class ServerStarter:
    """Perl Server::Starter (`start_server`) running the worker through a wrapper that moves the
    socket to fd 3 and sets LISTEN_FDS/LISTEN_PID, so the same worker runs unchanged."""

    def __init__(self, work, name, port, command):
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = port
        self.command = command
        self.log_path = os.path.join(self.dir, "start_server.log")
        self.process = None

    def start(self, timeout=30):
        wrapper = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server-starter-wrapper.sh")
        log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            ["start_server", f"--port=127.0.0.1:{self.port}", "--", "sh", os.path.abspath(wrapper)] + self.command,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        wait_until(lambda: answers(self.port) or self.process.poll() is not None, timeout, "start_server to serve")
        if self.process.poll() is not None:
            raise RuntimeError(f"start_server exited; see {self.log_path}")
        return self

    @property
    def pid(self):
        return self.process.pid

    def stop(self):
        stop_group(self.process)
