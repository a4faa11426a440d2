#!/usr/bin/env python3
"""A zero-downtime HTTP worker in plain Python, with no baton code in it.

It speaks only the systemd conventions, so it runs the same under baton (`handoff = "listen-fds"`,
the default) and under systemd socket activation:

  * sockets: LISTEN_FDS (fds 3, 4, ...), LISTEN_PID, LISTEN_FDNAMES (sd_listen_fds(3));
  * readiness: one datagram "READY=1" to NOTIFY_SOCKET (sd_notify(3));
  * drain: SIGTERM.

The drain spares keep-alive clients: stop accepting (close our copy of each listener; never
shutdown() it, the accept queue is shared with the next generation), answer the next request on
each connection with "Connection: close", close a connection only once it has been idle for
IDLE_GRACE seconds (longer than a client's pause between requests) or at DRAIN_DEADLINE, and
exit when none is left.

Run it under baton:

    baton run --listen http=tcp://127.0.0.1:8080 -- python3 Examples/python-worker/worker.py
"""

import os
import selectors
import signal
import socket
import sys
import time

IDLE_GRACE = 2.0
DRAIN_DEADLINE = 25.0
LINGER = 2.0


def listeners():
    """The sockets passed by LISTEN_FDS, by name (a name may carry several sockets)."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return {}
    count = int(os.environ.get("LISTEN_FDS", "0"))
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    result = {}
    for index in range(count):
        name = names[index] if index < len(names) else "unknown"
        result.setdefault(name, []).append(socket.socket(fileno=3 + index))
    return result


def notify(message):
    """sd_notify(3): one datagram to NOTIFY_SOCKET; '@' stands for an abstract address."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto(message.encode(), address)


class Connection:
    def __init__(self, sock, now):
        self.sock = sock
        self.input = b""
        self.output = b""
        self.last_activity = now
        self.closing = False        # the last response said Connection: close
        self.linger_until = None    # half-closed, waiting for the client to close


class Worker:
    def __init__(self, sockets):
        self.listeners = sockets
        self.selector = selectors.DefaultSelector()
        self.connections = {}
        self.drain_started = None
        self.stop_requested = False
        # Signals wake the selector through a pipe (signal.set_wakeup_fd).
        wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_write)
        signal.signal(signal.SIGTERM, self.on_sigterm)
        self.wake = wake_read
        self.selector.register(wake_read, selectors.EVENT_READ, None)
        for listener in sockets:
            # O_NONBLOCK is set on the socket all generations share: accept until EAGAIN.
            listener.setblocking(False)
            self.selector.register(listener, selectors.EVENT_READ, "accept")

    def on_sigterm(self, number, frame):
        self.stop_requested = True

    def run(self):
        notify("READY=1")
        while True:
            now = time.monotonic()
            if self.stop_requested and self.drain_started is None:
                self.begin_drain(now)
            if self.drain_started is not None:
                self.expire(now)
                if not self.connections:
                    print("drained", flush=True)
                    return
            for key, events in self.selector.select(self.timeout(now)):
                now = time.monotonic()
                if key.data is None:
                    try:
                        os.read(self.wake, 512)
                    except BlockingIOError:
                        pass
                elif key.data == "accept":
                    self.accept(key.fileobj, now)
                else:
                    self.service(key.data, events, now)

    def begin_drain(self, now):
        self.drain_started = now
        for listener in self.listeners:
            self.selector.unregister(listener)
            listener.close()
        self.listeners = []
        notify("STOPPING=1")
        print("draining: %d connections open" % len(self.connections), flush=True)

    def idle_since(self, connection):
        if connection.input or connection.output or connection.linger_until is not None:
            return None
        return max(connection.last_activity, self.drain_started)

    def expire(self, now):
        past_deadline = now >= self.drain_started + DRAIN_DEADLINE
        for connection in list(self.connections.values()):
            idle = self.idle_since(connection)
            if past_deadline or (idle is not None and now >= idle + IDLE_GRACE) or (
                    connection.linger_until is not None and now >= connection.linger_until):
                self.close(connection)

    def timeout(self, now):
        if self.drain_started is None:
            return None
        times = [self.drain_started + DRAIN_DEADLINE]
        for connection in self.connections.values():
            idle = self.idle_since(connection)
            if idle is not None:
                times.append(idle + IDLE_GRACE)
            if connection.linger_until is not None:
                times.append(connection.linger_until)
        return max(0.0, min(times) - now)

    def accept(self, listener, now):
        while self.drain_started is None:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return  # another worker took it, or the queue is empty
            except ConnectionAbortedError:
                continue
            sock.setblocking(False)
            connection = Connection(sock, now)
            self.connections[sock.fileno()] = connection
            self.selector.register(sock, selectors.EVENT_READ, connection)

    def service(self, connection, events, now):
        if self.connections.get(connection.sock.fileno()) is not connection:
            return
        if events & selectors.EVENT_READ:
            try:
                data = connection.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                return self.close(connection)
            if data == b"":
                return self.close(connection)
            if data:
                connection.last_activity = now
                if connection.linger_until is None:
                    connection.input += data
                    self.answer(connection)
        self.flush(connection, now)

    def answer(self, connection):
        while not connection.closing:
            end = connection.input.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = connection.input[:end].decode("latin-1").split("\r\n")
            version = lines[0].rsplit(" ", 1)[-1]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip().lower()
            length = int(headers.get("content-length", "0") or "0")
            if len(connection.input) < end + 4 + length:
                return
            connection.input = connection.input[end + 4 + length:]
            wants_keep_alive = ("close" not in headers.get("connection", "")) if version == "HTTP/1.1" \
                else ("keep-alive" in headers.get("connection", ""))
            keep_alive = wants_keep_alive and self.drain_started is None
            body = ("hello from python worker pid=%d\n" % os.getpid()).encode()
            connection.output += (
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n"
                % (len(body), "keep-alive" if keep_alive else "close")).encode() + body
            connection.closing = not keep_alive

    def flush(self, connection, now):
        while connection.output:
            try:
                sent = connection.sock.send(connection.output)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                return self.close(connection)
            connection.output = connection.output[sent:]
            connection.last_activity = now
        self.selector.modify(connection.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if connection.output else 0),
                             connection)
        if connection.closing and not connection.output and connection.linger_until is None:
            # Half-close, then wait for the client's close: closing at once could reset the
            # response if the client sent more meanwhile.
            try:
                connection.sock.shutdown(socket.SHUT_WR)
            except OSError:
                return self.close(connection)
            connection.input = b""
            connection.linger_until = now + LINGER

    def close(self, connection):
        if self.connections.pop(connection.sock.fileno(), None) is connection:
            self.selector.unregister(connection.sock)
            connection.sock.close()


def main():
    sockets = [sock for group in listeners().values() for sock in group if sock.type == socket.SOCK_STREAM]
    if not sockets:
        sys.exit("no listening socket: run under baton or systemd socket activation (LISTEN_FDS)")
    Worker(sockets).run()


if __name__ == "__main__":
    main()
