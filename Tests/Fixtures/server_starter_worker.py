#!/usr/bin/env python3
"""A worker written for Server::Starter (start_server), and for nothing else: it takes its
sockets from SERVER_STARTER_PORT ("127.0.0.1:8080=3;/path/to.sock=4"), labels its answers with
SERVER_STARTER_GENERATION, never notifies anyone (readiness is the master's `delay` or `spawn`),
and drains on SIGTERM, Server::Starter's default signal to an old generation.

Output, one line each: "worker pid=<pid> ports=<SERVER_STARTER_PORT>", "draining after SIGTERM: ...",
"drained".
"""

import os
import signal
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import drain_http  # noqa: E402


def server_starter_sockets():
    sockets = []
    for entry in os.environ["SERVER_STARTER_PORT"].split(";"):
        address, _, fd = entry.rpartition("=")
        sockets.append(socket.socket(fileno=int(fd)))
    return sockets


def main():
    server = drain_http.Server(server_starter_sockets(), label=os.environ["SERVER_STARTER_GENERATION"])
    server.drain_on(signal.SIGTERM)
    drain_http.say("worker pid=%d ports=%s" % (os.getpid(), os.environ["SERVER_STARTER_PORT"]))
    server.serve()


if __name__ == "__main__":
    main()
