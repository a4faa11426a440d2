// baton-bench-load: the benchmark's own HTTP load client and reload timer (127.0.0.1 only).
// Shared declarations of the four files: main.c (arguments), http.c (requests and response
// parsing), load.c (open-loop load), timing.c (reload timing).
#ifndef BATON_BENCH_LOAD_COMMON_H
#define BATON_BENCH_LOAD_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

// ---- clock and small helpers ----

/// CLOCK_MONOTONIC in nanoseconds.
uint64_t now_ns(void);
/// CLOCK_REALTIME in microseconds (to line up with the master's log timestamps).
uint64_t realtime_us(void);
void sleep_ns(uint64_t ns);
/// Prints "baton-bench-load: <message>" to stderr and exits 2.
void die(const char *format, ...) __attribute__((noreturn, format(printf, 1, 2)));

// ---- HTTP ----

/// How a request ended. The letters are the record file's outcome column.
enum outcome {
    OUT_OK = 'o',        // a complete 200 answer
    OUT_REFUSED = 'R',   // connect: ECONNREFUSED
    OUT_RESET = 'X',     // ECONNRESET / EPIPE while sending or reading
    OUT_TIMEOUT = 'T',   // no complete answer before the deadline (connect included)
    OUT_EMPTY = 'E',     // the connection closed before any byte of an answer
    OUT_SHORT = 'S',     // the connection closed in the middle of an answer
    OUT_STATUS = 'H',    // a complete answer with a status other than 200
    OUT_OTHER = 'O',     // any other error (e.g. EADDRNOTAVAIL: the client ran out of ports)
};

/// A parsed response head, filled once the whole response (head and body) is in the buffer.
struct response {
    int complete;        // 1: head and Content-Length bytes of body are in
    int malformed;       // 1: not an HTTP/1.x response
    int status;
    int close;           // "Connection: close"
    long pid;            // X-Baton-Pid, or -1
    long generation;     // X-Baton-Generation, or -1
    size_t total;        // head + body length
};

/// Parses `buffer[0..<length]`; `complete` stays 0 while more bytes are needed.
void http_parse(const char *buffer, size_t length, struct response *out);
/// "GET <path> HTTP/1.1" with Host, and `Connection: close` when `close`; returns its length.
size_t http_request(char *buffer, size_t size, const char *path, int close);

/// A non-blocking TCP socket connecting to 127.0.0.1:port. Returns the fd, or -errno when even
/// the start of the connect failed (ECONNREFUSED can come back at once on loopback).
int connect_loopback(int port);

// ---- the two modes ----

struct load_options {
    int port;
    const char *path;
    double rate;              // connect-per-request requests per second (0: none)
    int keepalive;            // keep-alive connections
    int keepalive_interval_ms;// each keep-alive connection sends one request this often
    int timeout_ms;           // a request without a complete answer by then is a timeout
    int duration_ms;          // hard bound on the run (SIGINT/SIGTERM end it sooner)
    int max_inflight;         // connect-per-request requests in flight at most (more: skipped)
    const char *records;      // per-request record file, or NULL
};

struct timing_options {
    int port;
    const char *path;
    const char *trigger;      // "hup:PID", "control:PATH" or "naive"
    pid_t parent;             // whose children are the old workers (hup/control)
    char **naive_argv;        // naive: the worker command, restarted with SIGTERM then exec
    int count;                // reloads
    int gap_ms;               // pause after each reload has fully ended
    int timeout_ms;           // bound on each reload
    int probe;                // 1: probe the port until a new pid answers
    int probe_interval_us;
    int warmup_ms;            // pause before the first reload (after a naive worker serves)
    int hold;                 // naive: after the last reload, keep the worker until SIGINT/SIGTERM
};

int run_load(const struct load_options *options);
int run_timing(const struct timing_options *options);

#endif
