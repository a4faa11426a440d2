// baton-bench-load: arguments. See common.h for the two modes.
#define _GNU_SOURCE
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char usage[] =
    "usage: baton-bench-load load --port P [--rate R] [--keepalive K] [--keepalive-interval-ms MS]\n"
    "                             [--timeout-ms MS] [--duration-ms MS] [--max-inflight N] [--records FILE]\n"
    "                             [--path /]\n"
    "       baton-bench-load timing --port P --trigger hup:PID|control:PATH|naive [--parent PID]\n"
    "                             [--count N] [--gap-ms MS] [--timeout-ms MS] [--no-probe]\n"
    "                             [--probe-interval-us US] [--warmup-ms MS] [--path /] [--hold]\n"
    "                             [-- WORKER COMMAND (naive)]\n"
    "Traffic goes to 127.0.0.1 only. load: open loop; SIGINT ends it early; prints one JSON line.\n"
    "timing: one JSON line per reload.\n";

static long number(const char *flag, const char *text, long low, long high) {
    char *rest = NULL;
    long value = strtol(text, &rest, 10);
    if (!rest || *rest || value < low || value > high) die("%s: expected a number in %ld...%ld, not '%s'", flag, low, high, text);
    return value;
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    // Many connections at once: take the hard limit.
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
    int is_load = strcmp(argv[1], "load") == 0;
    if (!is_load && strcmp(argv[1], "timing") != 0) die("unknown mode '%s'\n%s", argv[1], usage);
    struct load_options load = {.path = "/", .keepalive_interval_ms = 100, .timeout_ms = 3000,
                                .duration_ms = 600000, .max_inflight = 1024};
    struct timing_options timing = {.path = "/", .count = 10, .gap_ms = 100, .timeout_ms = 10000, .probe = 1,
                                    .probe_interval_us = 200};
    int port = 0;
    for (int i = 2; i < argc; i++) {
        const char *flag = argv[i];
        if (strcmp(flag, "--") == 0) {
            timing.naive_argv = &argv[i + 1];
            break;
        }
        if (strcmp(flag, "--no-probe") == 0) {
            timing.probe = 0;
            continue;
        }
        if (strcmp(flag, "--hold") == 0) {
            timing.hold = 1;
            continue;
        }
        if (i + 1 >= argc) die("%s needs a value", flag);
        const char *value = argv[++i];
        if (strcmp(flag, "--port") == 0) port = (int)number(flag, value, 1, 65535);
        else if (strcmp(flag, "--path") == 0) load.path = timing.path = value;
        else if (strcmp(flag, "--timeout-ms") == 0) load.timeout_ms = timing.timeout_ms = (int)number(flag, value, 1, 600000);
        else if (is_load && strcmp(flag, "--rate") == 0) load.rate = atof(value);
        else if (is_load && strcmp(flag, "--keepalive") == 0) load.keepalive = (int)number(flag, value, 0, 10000);
        else if (is_load && strcmp(flag, "--keepalive-interval-ms") == 0) load.keepalive_interval_ms = (int)number(flag, value, 1, 60000);
        else if (is_load && strcmp(flag, "--duration-ms") == 0) load.duration_ms = (int)number(flag, value, 1, 3600000);
        else if (is_load && strcmp(flag, "--max-inflight") == 0) load.max_inflight = (int)number(flag, value, 1, 60000);
        else if (is_load && strcmp(flag, "--records") == 0) load.records = value;
        else if (!is_load && strcmp(flag, "--trigger") == 0) timing.trigger = value;
        else if (!is_load && strcmp(flag, "--parent") == 0) timing.parent = (int)number(flag, value, 1, 1 << 30);
        else if (!is_load && strcmp(flag, "--count") == 0) timing.count = (int)number(flag, value, 0, 1000000);
        else if (!is_load && strcmp(flag, "--gap-ms") == 0) timing.gap_ms = (int)number(flag, value, 0, 600000);
        else if (!is_load && strcmp(flag, "--warmup-ms") == 0) timing.warmup_ms = (int)number(flag, value, 0, 600000);
        else if (!is_load && strcmp(flag, "--probe-interval-us") == 0) timing.probe_interval_us = (int)number(flag, value, 0, 1000000);
        else die("unknown option '%s'\n%s", flag, usage);
    }
    if (port == 0) die("--port is required");
    if (is_load) {
        if (load.rate < 0 || load.rate > 100000) die("--rate must be in 0...100000");
        load.port = port;
        return run_load(&load);
    }
    if (!timing.trigger) die("--trigger is required");
    if (strcmp(timing.trigger, "naive") == 0 && (!timing.naive_argv || !timing.naive_argv[0])) die("naive needs -- WORKER COMMAND");
    if (strncmp(timing.trigger, "naive", 5) != 0 && timing.parent == 0) die("--parent is required");
    timing.port = port;
    return run_timing(&timing);
}
