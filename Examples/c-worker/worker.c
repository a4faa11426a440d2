/*
 * A zero-downtime HTTP worker in C, with no baton code in it: it uses only libsystemd's
 * sd_listen_fds_with_names(3) for its sockets and sd_notify(3) for readiness, so it runs the same
 * under baton (handoff = "listen-fds", the default) and under systemd socket activation.
 *
 *   cc -O2 -o worker worker.c $(pkg-config --cflags --libs libsystemd)
 *   baton run --listen http=tcp://127.0.0.1:8080 -- ./worker
 *
 * One thread, poll(2). On SIGTERM it drains and spares keep-alive clients: it stops accepting
 * (closes its copy of each listener; never shutdown(), the accept queue is shared with the next
 * generation), answers the next request on each connection with "Connection: close", closes a
 * connection only once it has been idle for IDLE_GRACE_MS or at DRAIN_DEADLINE_MS, and exits
 * when none is left.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#define MAX_LISTENERS 16
#define MAX_CONNECTIONS 1024
#define BUFFER_SIZE 16384
#define IDLE_GRACE_MS 2000
#define DRAIN_DEADLINE_MS 25000
#define LINGER_MS 2000

struct connection {
    int fd;                 /* -1: free slot */
    char input[BUFFER_SIZE];
    size_t input_length;
    char output[BUFFER_SIZE];
    size_t output_length, output_sent;
    long long last_activity;
    int closing;            /* the last response said Connection: close */
    long long linger_until; /* half-closed, waiting for the client's close; 0 if not */
};

static int listeners[MAX_LISTENERS];
static int listener_count;
static struct connection connections[MAX_CONNECTIONS];
static long long drain_started; /* 0 while serving */

static long long now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void close_connection(struct connection *c) {
    close(c->fd);
    c->fd = -1;
}

static int open_connections(void) {
    int count = 0;
    for (int i = 0; i < MAX_CONNECTIONS; i++) count += connections[i].fd >= 0;
    return count;
}

static void begin_drain(void) {
    drain_started = now_ms();
    for (int i = 0; i < listener_count; i++) close(listeners[i]);
    listener_count = 0;
    sd_notify(0, "STOPPING=1");
    printf("draining: %d connections open\n", open_connections());
    fflush(stdout);
}

static void accept_all(int listener) {
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            return; /* EAGAIN: another worker took it, or the queue is empty */
        }
        struct connection *slot = NULL;
        for (int i = 0; i < MAX_CONNECTIONS && !slot; i++)
            if (connections[i].fd < 0) slot = &connections[i];
        if (!slot) {
            close(fd);
            continue;
        }
        memset(slot, 0, sizeof *slot);
        slot->fd = fd;
        slot->last_activity = now_ms();
    }
}

/* Is the value of header `name` in the request head `head` (NUL-terminated) containing `word`? */
static int header_has(const char *head, const char *name, const char *word) {
    size_t name_length = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        const char *start = line + 2;
        if (strncasecmp(start, name, name_length) == 0 && start[name_length] == ':') {
            const char *end = strstr(start, "\r\n");
            size_t length = end ? (size_t)(end - start) : strlen(start);
            char value[256];
            if (length >= sizeof value) length = sizeof value - 1;
            memcpy(value, start, length);
            value[length] = 0;
            return strcasestr(value + name_length + 1, word) != NULL;
        }
    }
    return 0;
}

/* Answers every complete request in the input buffer (bodies are not expected: GET). */
static void answer(struct connection *c) {
    while (!c->closing) {
        char *end = memmem(c->input, c->input_length, "\r\n\r\n", 4);
        if (!end) return;
        size_t head_length = (size_t)(end - c->input);
        char head[BUFFER_SIZE];
        memcpy(head, c->input, head_length);
        head[head_length] = 0;
        memmove(c->input, end + 4, c->input_length - head_length - 4);
        c->input_length -= head_length + 4;

        size_t request_line = strcspn(head, "\r");
        int http11 = request_line >= 8 && strncmp(head + request_line - 8, "HTTP/1.1", 8) == 0;
        int wants_keep_alive = http11 ? !header_has(head, "Connection", "close") : header_has(head, "Connection", "keep-alive");
        int keep_alive = wants_keep_alive && drain_started == 0;
        char body[128];
        int body_length = snprintf(body, sizeof body, "hello from c worker pid=%d\n", (int)getpid());
        int written = snprintf(c->output + c->output_length, sizeof c->output - c->output_length,
                               "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                               "Connection: %s\r\n\r\n%s",
                               body_length, keep_alive ? "keep-alive" : "close", body);
        if (written < 0 || (size_t)written >= sizeof c->output - c->output_length) {
            c->closing = 1; /* no room: give up on this client */
            return;
        }
        c->output_length += (size_t)written;
        c->closing = !keep_alive;
    }
}

static void flush_output(struct connection *c) {
    while (c->output_sent < c->output_length) {
        ssize_t sent = send(c->fd, c->output + c->output_sent, c->output_length - c->output_sent, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return;
            close_connection(c);
            return;
        }
        c->output_sent += (size_t)sent;
        c->last_activity = now_ms();
    }
    c->output_length = c->output_sent = 0;
    if (c->closing && !c->linger_until) {
        /* Half-close, then wait for the client's close: closing at once could reset the
         * response if the client sent more meanwhile. */
        shutdown(c->fd, SHUT_WR);
        c->input_length = 0;
        c->linger_until = now_ms() + LINGER_MS;
    }
}

static void readable(struct connection *c) {
    char scratch[BUFFER_SIZE];
    size_t room = c->linger_until ? sizeof scratch : sizeof c->input - c->input_length;
    if (room == 0) {
        close_connection(c); /* a request head larger than the buffer */
        return;
    }
    ssize_t count = recv(c->fd, c->linger_until ? scratch : c->input + c->input_length, room, 0);
    if (count < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (count <= 0) {
        close_connection(c); /* the client closed (or reset) */
        return;
    }
    c->last_activity = now_ms();
    if (c->linger_until) return; /* after the final response: discard */
    c->input_length += (size_t)count;
    answer(c);
    flush_output(c);
}

/* During a drain: close connections idle past the grace, lingering past their time, or all of
 * them at the deadline. Returns the poll timeout until the next such moment. */
static int expire(long long now) {
    long long next = drain_started + DRAIN_DEADLINE_MS;
    int past_deadline = now >= next;
    for (int i = 0; i < MAX_CONNECTIONS; i++) {
        struct connection *c = &connections[i];
        if (c->fd < 0) continue;
        long long due = 0;
        if (c->linger_until) {
            due = c->linger_until;
        } else if (c->input_length == 0 && c->output_length == 0) {
            due = (c->last_activity > drain_started ? c->last_activity : drain_started) + IDLE_GRACE_MS;
        }
        if (past_deadline || (due && now >= due)) {
            close_connection(c);
        } else if (due && due < next) {
            next = due;
        }
    }
    return past_deadline ? 0 : (int)(next - now);
}

int main(void) {
    for (int i = 0; i < MAX_CONNECTIONS; i++) connections[i].fd = -1;

    char **names = NULL;
    int count = sd_listen_fds_with_names(1, &names);
    if (count <= 0) {
        fprintf(stderr, "no listening socket: run under baton or systemd socket activation (LISTEN_FDS)\n");
        return 1;
    }
    for (int i = 0; i < count && listener_count < MAX_LISTENERS; i++) {
        int fd = SD_LISTEN_FDS_START + i;
        /* Stream listeners only; a datagram socket would need another loop. */
        if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) > 0) {
            /* O_NONBLOCK is set on the socket all generations share: accept until EAGAIN. */
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
            listeners[listener_count++] = fd;
        }
        free(names ? names[i] : NULL);
    }
    free(names);

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int signals = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

    sd_notify(0, "READY=1");

    struct pollfd entries[1 + MAX_LISTENERS + MAX_CONNECTIONS];
    struct connection *owners[1 + MAX_LISTENERS + MAX_CONNECTIONS];
    for (;;) {
        int timeout = -1;
        if (drain_started) {
            timeout = expire(now_ms());
            if (open_connections() == 0) {
                printf("drained\n");
                return 0;
            }
        }
        int n = 0;
        entries[n] = (struct pollfd){.fd = signals, .events = POLLIN};
        owners[n++] = NULL;
        for (int i = 0; i < listener_count; i++) {
            entries[n] = (struct pollfd){.fd = listeners[i], .events = POLLIN};
            owners[n++] = NULL;
        }
        for (int i = 0; i < MAX_CONNECTIONS; i++) {
            if (connections[i].fd < 0) continue;
            short events = POLLIN | (connections[i].output_length ? POLLOUT : 0);
            entries[n] = (struct pollfd){.fd = connections[i].fd, .events = events};
            owners[n++] = &connections[i];
        }
        if (poll(entries, (nfds_t)n, timeout) < 0) {
            if (errno == EINTR) continue;
            perror("poll");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            if (!entries[i].revents) continue;
            if (entries[i].fd == signals) {
                struct signalfd_siginfo info;
                while (read(signals, &info, sizeof info) == sizeof info) {
                    if (!drain_started) begin_drain();
                }
            } else if (!owners[i]) {
                if (!drain_started) accept_all(entries[i].fd);
            } else if (owners[i]->fd == entries[i].fd) {
                if (entries[i].revents & (POLLIN | POLLHUP | POLLERR)) readable(owners[i]);
                if (owners[i]->fd >= 0 && owners[i]->output_length) flush_output(owners[i]);
            }
        }
    }
}
