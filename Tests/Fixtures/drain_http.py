"""A small single-threaded HTTP/1.1 server over inherited listening sockets, with a keep-alive
aware drain, shared by the compatibility fixtures (einhorn_worker.py, server_starter_worker.py).
It knows nothing of baton: the caller hands it sockets and tells it when to drain.

  GET /      -> 200 "gen=<label> pid=<pid> lang=python"
  GET /env   -> 200 the environment, one KEY=VALUE per line, sorted

The drain: close this process's copies of the listeners (never shutdown(): the accept queue is
shared with the master and the next generation), answer the next request on each connection with
"Connection: close" and then close it, close a connection that stays idle for `idle_grace`
seconds (counted from the drain's start or its last activity, whichever is later), close
everything at `deadline` seconds, and return once no connection is left.
"""

import os
import selectors
import signal
import socket
import time

LINGER = 2.0


def say(line):
    print(line, flush=True)


class Connection:
    def __init__(self, sock, now):
        self.sock = sock
        self.input = b""
        self.output = b""
        self.last_activity = now
        self.close_after_send = False
        self.linger_until = None


class Server:
    def __init__(self, listeners, label, idle_grace=1.5, deadline=25.0):
        self.listeners = list(listeners)
        self.label = label
        self.idle_grace = idle_grace
        self.deadline = deadline
        self.selector = selectors.DefaultSelector()
        self.connections = {}
        self.draining_since = None
        self.drain_reason = None
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wakeup_read = read_end
        signal.set_wakeup_fd(write_end)
        self.selector.register(read_end, selectors.EVENT_READ, "wakeup")

    def drain_on(self, *signals):
        for number in signals:
            signal.signal(number, self._on_signal)

    def _on_signal(self, number, frame):
        if self.drain_reason is None:
            self.drain_reason = signal.Signals(number).name

    def serve(self):
        for listener in self.listeners:
            # O_NONBLOCK lands on the shared file description: accept until EAGAIN, as another
            # worker or generation may win each connection.
            listener.setblocking(False)
            self.selector.register(listener, selectors.EVENT_READ, "listener")
        while True:
            now = time.monotonic()
            if self.drain_reason is not None and self.draining_since is None:
                self._begin_drain(now)
            if self.draining_since is not None:
                self._drain_timers(now)
                if not self.connections:
                    say("drained")
                    return
            for key, events in self.selector.select(self._timeout(now)):
                now = time.monotonic()
                if key.data == "wakeup":
                    try:
                        os.read(self.wakeup_read, 512)
                    except BlockingIOError:
                        pass
                elif key.data == "listener":
                    if self.draining_since is None:
                        self._accept(key.fileobj, now)
                else:
                    self._event(key.data, events, now)

    def _timeout(self, now):
        if self.draining_since is None:
            return None
        candidates = [self.draining_since + self.deadline]
        for connection in self.connections.values():
            if connection.linger_until is not None:
                candidates.append(connection.linger_until)
            elif self._idle(connection):
                candidates.append(max(connection.last_activity, self.draining_since) + self.idle_grace)
        return max(0.0, min(candidates) - now)

    def _begin_drain(self, now):
        self.draining_since = now
        for listener in self.listeners:
            self.selector.unregister(listener)
            listener.close()
        self.listeners = []
        say("draining after %s: stopped accepting, %d connections open" % (self.drain_reason, len(self.connections)))

    def _drain_timers(self, now):
        if now >= self.draining_since + self.deadline:
            for connection in list(self.connections.values()):
                self._close(connection)
            return
        for connection in list(self.connections.values()):
            if connection.linger_until is not None:
                if now >= connection.linger_until:
                    self._close(connection)
            elif self._idle(connection) and now >= max(connection.last_activity, self.draining_since) + self.idle_grace:
                self._close(connection)

    @staticmethod
    def _idle(connection):
        return not connection.input and not connection.output

    def _accept(self, listener, now):
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            sock.setblocking(False)
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = Connection(sock, now)
            self.connections[sock.fileno()] = connection
            self.selector.register(sock, selectors.EVENT_READ, connection)

    def _event(self, connection, events, now):
        if connection.sock.fileno() not in self.connections:
            return
        if events & selectors.EVENT_READ:
            try:
                data = connection.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self._close(connection)
                return
            if data == b"":
                # The client closed (or half-closed: nothing it could still read is owed then).
                self._close(connection)
                return
            if data:
                connection.last_activity = now
                if connection.linger_until is None:
                    connection.input += data
                    self._process(connection)
        self._flush(connection, now)

    def _process(self, connection):
        while not connection.close_after_send:
            end = connection.input.find(b"\r\n\r\n")
            if end < 0:
                return
            head = connection.input[:end].decode("latin-1")
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                connection.input = b""
                self._respond(connection, 400, "bad request line\n", keep_alive=False)
                return
            method, path, version = parts
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or "0")
            if len(connection.input) < end + 4 + length:
                return
            connection.input = connection.input[end + 4 + length:]
            connection_header = headers.get("connection", "").lower()
            keep_alive = "close" not in connection_header if version == "HTTP/1.1" else "keep-alive" in connection_header
            if path == "/env":
                body = "".join("%s=%s\n" % item for item in sorted(os.environ.items()))
            else:
                body = "gen=%s pid=%d lang=python\n" % (self.label, os.getpid())
            self._respond(connection, 200, body, keep_alive=keep_alive and self.draining_since is None)

    def _respond(self, connection, status, body, keep_alive):
        reason = {200: "OK", 400: "Bad Request"}[status]
        payload = body.encode()
        head = "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n" % (
            status, reason, len(payload), "keep-alive" if keep_alive else "close")
        connection.output += head.encode() + payload
        if not keep_alive:
            connection.close_after_send = True

    def _flush(self, connection, now):
        while connection.output:
            try:
                sent = connection.sock.send(connection.output)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._close(connection)
                return
            connection.output = connection.output[sent:]
            connection.last_activity = now
        wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if connection.output else 0)
        self.selector.modify(connection.sock, wanted, connection)
        if not connection.output and connection.close_after_send and connection.linger_until is None:
            # Half-close and read until the client closes, so that a request it sent meanwhile is
            # not answered with a reset of the whole response.
            try:
                connection.sock.shutdown(socket.SHUT_WR)
            except OSError:
                self._close(connection)
                return
            connection.input = b""
            connection.linger_until = now + LINGER

    def _close(self, connection):
        fd = connection.sock.fileno()
        if self.connections.get(fd) is not connection:
            return
        del self.connections[fd]
        self.selector.unregister(connection.sock)
        connection.sock.close()
