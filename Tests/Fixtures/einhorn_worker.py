#!/usr/bin/env python3
"""A worker written for einhorn, and for nothing else: it takes its sockets from EINHORN_FD_COUNT
and EINHORN_FD_<i>, checks EINHORN_MASTER_PID like einhorn's worker library (the master must be
its parent), acknowledges on EINHORN_SOCK_PATH once it serves, and drains on SIGUSR2, einhorn's
graceful-shutdown signal (SIGTERM keeps its default action: it kills).

The ack is one line of einhorn's transport: even EINHORN_CHILD_INDEX sends JSON
({"command":"worker:ack","pid":N}), odd sends what einhorn's Ruby client sends (YAML, newlines
escaped as %0A). The body's gen= label comes from BATON_GENERATION, for the test to count
answers per generation; nothing else of baton is read.

Output, one line each: "worker pid=<pid> index=<i> acked", "draining after SIGUSR2: ...", "drained".
"""

import json
import os
import signal
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import drain_http  # noqa: E402


def einhorn_sockets():
    count = int(os.environ["EINHORN_FD_COUNT"])
    return [socket.socket(fileno=int(os.environ["EINHORN_FD_%d" % i])) for i in range(count)]


def ack(index):
    if index % 2 == 0:
        line = json.dumps({"command": "worker:ack", "pid": os.getpid()}, separators=(",", ":"))
    else:
        line = "---\ncommand: worker:ack\npid: %d\n" % os.getpid()
    escaped = line.replace("%", "%25").replace("\n", "%0A") + "\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(os.environ["EINHORN_SOCK_PATH"])
        client.sendall(escaped.encode())


def main():
    master = int(os.environ.get("EINHORN_MASTER_PID", "0"))
    if master != os.getppid():
        sys.exit("EINHORN_MASTER_PID=%d but my parent is %d" % (master, os.getppid()))
    index = int(os.environ["EINHORN_CHILD_INDEX"])
    server = drain_http.Server(einhorn_sockets(), label=os.environ.get("BATON_GENERATION", "?"))
    server.drain_on(signal.SIGUSR2)
    ack(index)
    drain_http.say("worker pid=%d index=%d acked" % (os.getpid(), index))
    server.serve()


if __name__ == "__main__":
    main()
