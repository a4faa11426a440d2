#!/usr/bin/env python3
"""A baton worker in the channel mode (handoff = "channel"), written in Python with nothing but
the standard library: proof that the protocol needs no Swift and no baton library.

It takes its sockets from the channel at BATON_CHANNEL_FD (LISTEN_FDS=n, LISTEN_FDNAMES=a:b,
BATON_GENERATION=g, the fds in SCM_RIGHTS, MORE=1 on all but the last message), serves HTTP/1.1
(one request per connection) on every listening stream socket, says READY=1 on the channel, and
drains on DRAIN=1 (or on SIGTERM, once it has given up its channel).

Output, one line each:
  handoff messages=<m> fds=<n>
  listener <name> <ipv4|ipv6|unix|udp4|udp6> <address>
  worker pid=<pid> gen=<gen> ready
  draining after DRAIN=1 TIMEOUT_USEC=<usec>   (or: draining after SIGTERM)
  drained

Switches:
  --malformed DIR    before READY=1, send messages the master must reject: oversized, no "=",
                     a bad key, an unknown word, and one carrying an fd (of DIR/fd-probe)
  --close-channel    close the channel right after READY=1 (then drain on SIGTERM)
"""

import os
import selectors
import signal
import socket
import sys

MAX_MESSAGE = 65536
MAX_FDS = 253


def say(line):
    print(line, flush=True)


def fields(data):
    """KEY=VALUE lines, the grammar of sd_notify and of baton's channel."""
    result = {}
    for line in data.decode("utf-8").split("\n"):
        if "=" in line:
            key, value = line.split("=", 1)
            result[key] = value
    return result


def receive_handoff(channel):
    listeners = []
    generation = os.environ.get("BATON_GENERATION", "0")
    messages = 0
    while True:
        data, fds, flags, _ = socket.recv_fds(channel, MAX_MESSAGE, MAX_FDS, socket.MSG_CMSG_CLOEXEC)
        if not data and not fds:
            sys.exit("channel closed before the handoff ended")
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            sys.exit("handoff message truncated")
        messages += 1
        message = fields(data)
        if int(message.get("LISTEN_FDS", "-1")) != len(fds):
            sys.exit("LISTEN_FDS=%s but %d fds arrived" % (message.get("LISTEN_FDS"), len(fds)))
        names = message.get("LISTEN_FDNAMES", "").split(":") if fds else []
        if len(names) != len(fds):
            sys.exit("%d names for %d fds" % (len(names), len(fds)))
        for name, fd in zip(names, fds):
            listeners.append((name, socket.socket(fileno=fd)))
        generation = message.get("BATON_GENERATION", generation)
        if message.get("MORE") != "1":
            return listeners, generation, messages


def describe(sock):
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        if isinstance(address, bytes):
            address = "@" + address[1:].decode() if address[:1] == b"\0" else address.decode()
        return "unix", address
    datagram = sock.type == socket.SOCK_DGRAM
    if sock.family == socket.AF_INET6:
        return ("udp6" if datagram else "ipv6"), "[%s]:%d" % (address[0], address[1])
    return ("udp4" if datagram else "ipv4"), "%s:%d" % (address[0], address[1])


def send_malformed(channel, directory):
    channel.send(b"STATUS=" + b"x" * 5000)
    channel.send(b"HELLO")
    channel.send(b"ready=1")
    channel.send(b"WATCHDOG=1")
    with open(os.path.join(directory, "fd-probe"), "w") as probe:
        socket.send_fds(channel, [b"STATUS=with an fd"], [probe.fileno()])


def respond(connection, identity, listing):
    connection.setblocking(True)
    connection.settimeout(5)
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = connection.recv(4096)
        if not chunk:
            return
        request += chunk
    path = request.split(b" ", 2)[1].decode()
    body = (listing if path == "/listeners" else identity + "\n").encode()
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
        "X-Baton-Generation: %s\r\nConnection: close\r\n\r\n" % (len(body), identity.split()[1][4:])
    )
    connection.sendall(head.encode() + body)


def main():
    arguments = sys.argv[1:]
    malformed = arguments[arguments.index("--malformed") + 1] if "--malformed" in arguments else None
    close_channel = "--close-channel" in arguments

    wake_read, wake_write = socket.socketpair()
    wake_write.setblocking(False)
    signal.set_wakeup_fd(wake_write.fileno())
    signal.signal(signal.SIGTERM, lambda *_: None)

    channel = socket.socket(fileno=int(os.environ["BATON_CHANNEL_FD"]))
    listeners, generation, messages = receive_handoff(channel)
    say("handoff messages=%d fds=%d" % (messages, len(listeners)))
    lines = []
    for name, sock in listeners:
        family, address = describe(sock)
        lines.append("%s %s %s" % (name, family, address))
    for line in lines:
        say("listener " + line)
    listing = "".join(line + "\n" for line in lines)
    identity = "pid=%d gen=%s worker=%s lang=python" % (os.getpid(), generation, os.environ.get("BATON_WORKER"))

    selector = selectors.DefaultSelector()
    selector.register(wake_read, selectors.EVENT_READ, "signal")
    serving = []
    for name, sock in listeners:
        if sock.type == socket.SOCK_STREAM and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            # The flag lands on the description shared with the master and the other workers: an
            # accept that lost the race must not block.
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, "listener")
            serving.append(sock)

    if malformed:
        send_malformed(channel, malformed)
    channel.send(b"READY=1")
    say("worker pid=%d gen=%s ready" % (os.getpid(), generation))
    if close_channel:
        channel.close()
        channel = None
        say("channel closed")
    else:
        selector.register(channel, selectors.EVENT_READ, "channel")

    while True:
        for key, _ in selector.select():
            if key.data == "listener":
                try:
                    connection, _ = key.fileobj.accept()
                except BlockingIOError:
                    continue
                with connection:
                    try:
                        respond(connection, identity, listing)
                    except OSError:
                        pass
                continue
            if key.data == "signal":
                numbers = wake_read.recv(64)
                if signal.SIGTERM not in numbers:
                    continue
                reason = "SIGTERM"
            else:
                data = channel.recv(MAX_MESSAGE)
                if not data:
                    say("channel closed by the master")
                    selector.unregister(channel)
                    continue
                message = fields(data)
                if message.get("DRAIN") != "1":
                    continue
                reason = "DRAIN=1 TIMEOUT_USEC=%s" % message.get("TIMEOUT_USEC")
            # Requests are answered one at a time, so none is in flight here: close the listeners
            # (never shut them down: the master and the next generation share them) and leave.
            say("draining after " + reason)
            for sock in serving:
                selector.unregister(sock)
                sock.close()
            if channel is not None:
                channel.send(b"STOPPING=1")
            say("drained")
            return 0


if __name__ == "__main__":
    sys.exit(main())
