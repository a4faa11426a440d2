// Open-loop load on 127.0.0.1: connect-per-request at a fixed rate and keep-alive connections that
// each send one request per interval, at once, on one epoll loop. Every request ends with one
// outcome (common.h); a request that is due while the previous one on its keep-alive connection is
// still out, or while `max_inflight` connect-per-request requests are out, is counted as skipped
// (the client could not keep up - the figures would then flatter the server) and not sent.
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

enum state { S_FREE, S_CONNECTING, S_SENDING, S_READING, S_IDLE };

struct conn {
    int fd;
    enum state state;
    int keepalive;
    uint64_t start;
    uint64_t deadline;
    uint64_t next_send;
    size_t sent;
    size_t received;
    struct conn *next_free;
    char buffer[2048];
};

/// Counts and latencies of one class of requests (connect-per-request or keep-alive).
struct tally {
    uint64_t sent, ok, refused, reset, timeout, empty, shortreply, status, other, skipped;
    uint64_t *latencies;  // of ok requests, in microseconds
    size_t count, capacity;
};

static volatile sig_atomic_t stop_requested;
static void on_stop(int signal) { (void)signal; stop_requested = 1; }

static struct load_state {
    const struct load_options *options;
    int epoll;
    FILE *records;
    char close_request[256], keepalive_request[256];
    size_t close_request_length, keepalive_request_length;
    struct tally tallies[2];    // [0] connect-per-request, [1] keep-alive
    uint64_t idle_closed, idle_reset, connections;
    struct conn *free_list;
    int inflight;
} S;

static void record(struct conn *c, enum outcome outcome, uint64_t end) {
    struct tally *t = &S.tallies[c->keepalive];
    uint64_t latency_us = (end - c->start) / 1000u;
    switch (outcome) {
    case OUT_OK:
        t->ok++;
        if (t->count == t->capacity) {
            t->capacity = t->capacity ? t->capacity * 2 : 65536;
            t->latencies = realloc(t->latencies, t->capacity * sizeof *t->latencies);
            if (!t->latencies) die("out of memory");
        }
        t->latencies[t->count++] = latency_us;
        break;
    case OUT_REFUSED: t->refused++; break;
    case OUT_RESET: t->reset++; break;
    case OUT_TIMEOUT: t->timeout++; break;
    case OUT_EMPTY: t->empty++; break;
    case OUT_SHORT: t->shortreply++; break;
    case OUT_STATUS: t->status++; break;
    case OUT_OTHER: t->other++; break;
    }
    if (S.records) {
        fprintf(S.records, "%llu %c %llu %c\n", (unsigned long long)(c->start / 1000u), c->keepalive ? 'k' : 'c',
                (unsigned long long)latency_us, (char)outcome);
    }
}

static enum outcome outcome_of_errno(int error) {
    switch (error) {
    case ECONNREFUSED: return OUT_REFUSED;
    case ECONNRESET: case EPIPE: return OUT_RESET;
    case ETIMEDOUT: return OUT_TIMEOUT;
    default: return OUT_OTHER;
    }
}

static void drop_fd(struct conn *c) {
    if (c->fd >= 0) {
        epoll_ctl(S.epoll, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
}

/// Ends the request on `c`. A keep-alive connection stays open (idle) only after a complete
/// answer that did not say `Connection: close`.
static void finish(struct conn *c, enum outcome outcome, int keep_open, uint64_t end) {
    record(c, outcome, end);
    if (c->keepalive && keep_open) {
        c->state = S_IDLE;
        return;
    }
    drop_fd(c);
    c->state = S_FREE;
    if (!c->keepalive) {
        c->next_free = S.free_list;
        S.free_list = c;
        S.inflight--;
    }
}

static void watch(struct conn *c, uint32_t events, int op) {
    struct epoll_event event = {.events = events, .data.ptr = c};
    if (epoll_ctl(S.epoll, op, c->fd, &event) != 0) die("epoll_ctl: %s", strerror(errno));
}

static void try_send(struct conn *c) {
    const char *request = c->keepalive ? S.keepalive_request : S.close_request;
    size_t length = c->keepalive ? S.keepalive_request_length : S.close_request_length;
    while (c->sent < length) {
        ssize_t n = send(c->fd, request + c->sent, length - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            watch(c, EPOLLOUT, EPOLL_CTL_MOD);
            return;
        } else {
            finish(c, outcome_of_errno(errno), 0, now_ns());
            return;
        }
    }
    c->state = S_READING;
    c->received = 0;
    watch(c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
}

/// Starts a request on `c`: on its open keep-alive connection, or on a new connection.
static void start_request(struct conn *c, uint64_t now) {
    c->start = now;
    c->deadline = now + (uint64_t)S.options->timeout_ms * 1000000u;
    c->sent = 0;
    c->received = 0;
    S.tallies[c->keepalive].sent++;
    if (c->fd >= 0 && c->state == S_IDLE) {
        c->state = S_SENDING;
        try_send(c);
        return;
    }
    int fd = connect_loopback(S.options->port);
    if (fd < 0) {
        c->fd = -1;
        finish(c, outcome_of_errno(-fd), 0, now);
        return;
    }
    S.connections++;
    c->fd = fd;
    c->state = S_CONNECTING;
    watch(c, EPOLLOUT, EPOLL_CTL_ADD);
}

static void on_readable(struct conn *c) {
    for (;;) {
        size_t room = sizeof c->buffer - c->received;
        if (room == 0) {
            finish(c, OUT_OTHER, 0, now_ns());
            return;
        }
        ssize_t n = recv(c->fd, c->buffer + c->received, room, 0);
        if (n > 0) {
            c->received += (size_t)n;
            struct response response;
            http_parse(c->buffer, c->received, &response);
            if (response.malformed) {
                finish(c, OUT_OTHER, 0, now_ns());
                return;
            }
            if (response.complete) {
                enum outcome outcome = response.status == 200 ? OUT_OK : OUT_STATUS;
                finish(c, outcome, !response.close && response.total == c->received, now_ns());
                return;
            }
        } else if (n == 0) {
            finish(c, c->received == 0 ? OUT_EMPTY : OUT_SHORT, 0, now_ns());
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN) {
            return;
        } else {
            finish(c, outcome_of_errno(errno), 0, now_ns());
            return;
        }
    }
}

/// An idle keep-alive connection became readable: the server closed it (or reset it) between
/// requests. Not a failed request; the next one reconnects.
static void on_idle_event(struct conn *c) {
    char scratch[256];
    ssize_t n = recv(c->fd, scratch, sizeof scratch, MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) return;
    if (n == 0) S.idle_closed++; else S.idle_reset++;
    drop_fd(c);
    c->state = S_FREE;
}

static void on_event(struct conn *c, uint32_t events) {
    switch (c->state) {
    case S_CONNECTING: {
        int error = 0;
        socklen_t length = sizeof error;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &length);
        if (error != 0) {
            finish(c, outcome_of_errno(error), 0, now_ns());
            return;
        }
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        c->state = S_SENDING;
        try_send(c);
        return;
    }
    case S_SENDING: try_send(c); return;
    case S_READING: on_readable(c); return;
    case S_IDLE: on_idle_event(c); return;
    case S_FREE: return;
    }
}

static void expire(struct conn *c, uint64_t now) {
    if ((c->state == S_CONNECTING || c->state == S_SENDING || c->state == S_READING) && c->deadline <= now) {
        finish(c, OUT_TIMEOUT, 0, now);
    }
}

static int compare_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t percentile(const struct tally *t, double p) {
    if (t->count == 0) return 0;
    size_t index = (size_t)(p * (double)(t->count - 1) + 0.5);
    return t->latencies[index];
}

static void print_tally(const char *name, struct tally *t) {
    qsort(t->latencies, t->count, sizeof *t->latencies, compare_u64);
    printf("\"%s\":{\"sent\":%llu,\"ok\":%llu,\"refused\":%llu,\"reset\":%llu,\"timeout\":%llu,\"empty\":%llu,"
           "\"short\":%llu,\"status\":%llu,\"other\":%llu,\"skipped\":%llu,\"p50_us\":%llu,\"p99_us\":%llu,"
           "\"max_us\":%llu}",
           name, (unsigned long long)t->sent, (unsigned long long)t->ok, (unsigned long long)t->refused,
           (unsigned long long)t->reset, (unsigned long long)t->timeout, (unsigned long long)t->empty,
           (unsigned long long)t->shortreply, (unsigned long long)t->status, (unsigned long long)t->other,
           (unsigned long long)t->skipped, (unsigned long long)percentile(t, 0.50),
           (unsigned long long)percentile(t, 0.99), (unsigned long long)(t->count ? t->latencies[t->count - 1] : 0));
}

int run_load(const struct load_options *options) {
    S.options = options;
    S.close_request_length = http_request(S.close_request, sizeof S.close_request, options->path, 1);
    S.keepalive_request_length = http_request(S.keepalive_request, sizeof S.keepalive_request, options->path, 0);
    S.epoll = epoll_create1(EPOLL_CLOEXEC);
    if (S.epoll < 0) die("epoll_create1: %s", strerror(errno));
    if (options->records) {
        S.records = fopen(options->records, "w");
        if (!S.records) die("%s: %s", options->records, strerror(errno));
        setvbuf(S.records, NULL, _IOFBF, 1 << 20);
    }
    struct sigaction action = {.sa_handler = on_stop};
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    signal(SIGPIPE, SIG_IGN);

    int pool_size = options->max_inflight;
    struct conn *pool = calloc((size_t)pool_size, sizeof *pool);
    struct conn *keepalive = calloc((size_t)(options->keepalive > 0 ? options->keepalive : 1), sizeof *keepalive);
    if (!pool || !keepalive) die("out of memory");
    for (int i = pool_size - 1; i >= 0; i--) {
        pool[i].fd = -1;
        pool[i].next_free = S.free_list;
        S.free_list = &pool[i];
    }
    uint64_t start = now_ns();
    uint64_t interval = (uint64_t)options->keepalive_interval_ms * 1000000u;
    for (int i = 0; i < options->keepalive; i++) {
        keepalive[i].fd = -1;
        keepalive[i].keepalive = 1;
        keepalive[i].next_send = start + interval * (uint64_t)i / (uint64_t)options->keepalive;
    }
    uint64_t period = options->rate > 0 ? (uint64_t)(1e9 / options->rate) : 0;
    uint64_t next_close = start;
    uint64_t stop_at = start + (uint64_t)options->duration_ms * 1000000u;
    uint64_t next_expiry_check = start;
    struct epoll_event events[256];

    while (!stop_requested) {
        uint64_t now = now_ns();
        if (now >= stop_at) break;
        while (period && next_close <= now) {
            next_close += period;
            if (!S.free_list) {
                S.tallies[0].skipped++;
                continue;
            }
            struct conn *c = S.free_list;
            S.free_list = c->next_free;
            S.inflight++;
            c->keepalive = 0;
            c->fd = -1;
            start_request(c, now);
        }
        uint64_t wake = period ? next_close : now + 10000000u;
        for (int i = 0; i < options->keepalive; i++) {
            struct conn *c = &keepalive[i];
            if (c->next_send <= now) {
                c->next_send += interval;
                if (c->state == S_FREE || c->state == S_IDLE) {
                    start_request(c, now);
                } else {
                    S.tallies[1].skipped++;
                }
            }
            if (c->next_send < wake) wake = c->next_send;
        }
        if (now >= next_expiry_check) {
            for (int i = 0; i < pool_size; i++) expire(&pool[i], now);
            for (int i = 0; i < options->keepalive; i++) expire(&keepalive[i], now);
            next_expiry_check = now + 1000000u;
        }
        int wait_ms = wake > now ? (int)((wake - now + 999999u) / 1000000u) : 0;
        if (wait_ms > 10) wait_ms = 10;
        int n = epoll_wait(S.epoll, events, 256, wait_ms);
        for (int i = 0; i < n; i++) on_event(events[i].data.ptr, events[i].events);
    }
    // Let the requests in flight finish (each within its own deadline); send nothing new.
    for (;;) {
        uint64_t now = now_ns();
        int busy = 0;
        for (int i = 0; i < pool_size; i++) {
            expire(&pool[i], now);
            busy |= pool[i].state != S_FREE;
        }
        for (int i = 0; i < options->keepalive; i++) {
            expire(&keepalive[i], now);
            busy |= keepalive[i].state != S_FREE && keepalive[i].state != S_IDLE;
        }
        if (!busy) break;
        int n = epoll_wait(S.epoll, events, 256, 5);
        for (int i = 0; i < n; i++) on_event(events[i].data.ptr, events[i].events);
    }
    for (int i = 0; i < options->keepalive; i++) drop_fd(&keepalive[i]);
    if (S.records) fclose(S.records);
    double seconds = (double)(now_ns() - start) / 1e9;
    printf("{\"seconds\":%.3f,", seconds);
    print_tally("close", &S.tallies[0]);
    putchar(',');
    print_tally("keepalive", &S.tallies[1]);
    // The client's own CPU time, to show it was not the bottleneck.
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    double cpu = (double)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                 (double)(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    printf(",\"idle_closed\":%llu,\"idle_reset\":%llu,\"connections\":%llu,\"cpu_seconds\":%.3f}\n",
           (unsigned long long)S.idle_closed, (unsigned long long)S.idle_reset, (unsigned long long)S.connections, cpu);
    fflush(stdout);
    return 0;
}
