// Requests, response parsing, loopback connects and the clock.
#define _GNU_SOURCE
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t realtime_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void sleep_ns(uint64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void die(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fputs("baton-bench-load: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    exit(2);
}

size_t http_request(char *buffer, size_t size, const char *path, int close) {
    int length = snprintf(buffer, size, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n", path,
                          close ? "Connection: close\r\n" : "");
    if (length < 0 || (size_t)length >= size) die("request too long");
    return (size_t)length;
}

/// The value of header `name` in the head `[start, end)`, or NULL; `*value_length` is set.
static const char *header(const char *start, const char *end, const char *name, size_t *value_length) {
    size_t name_length = strlen(name);
    const char *line = start;
    while (line < end) {
        const char *eol = memmem(line, (size_t)(end - line), "\r\n", 2);
        if (!eol) eol = end;
        if ((size_t)(eol - line) > name_length && line[name_length] == ':' &&
            strncasecmp(line, name, name_length) == 0) {
            const char *value = line + name_length + 1;
            while (value < eol && (*value == ' ' || *value == '\t')) value++;
            *value_length = (size_t)(eol - value);
            return value;
        }
        line = eol + 2;
    }
    return NULL;
}

static long header_number(const char *start, const char *end, const char *name) {
    size_t length = 0;
    const char *value = header(start, end, name, &length);
    if (!value || length == 0 || length > 20) return -1;
    char text[24];
    memcpy(text, value, length);
    text[length] = 0;
    char *rest = NULL;
    long number = strtol(text, &rest, 10);
    return (rest && *rest == 0) ? number : -1;
}

void http_parse(const char *buffer, size_t length, struct response *out) {
    memset(out, 0, sizeof *out);
    out->pid = -1;
    out->generation = -1;
    if (length >= 5 && memcmp(buffer, "HTTP/", 5) != 0) {
        out->malformed = 1;
        return;
    }
    const char *head_end = memmem(buffer, length, "\r\n\r\n", 4);
    if (!head_end) return;
    if (length < 12 || memcmp(buffer, "HTTP/1.", 7) != 0) {
        out->malformed = 1;
        return;
    }
    out->status = atoi(buffer + 9);
    const char *headers = memchr(buffer, '\n', length);
    headers = headers ? headers + 1 : head_end;
    long content_length = header_number(headers, head_end + 2, "Content-Length");
    if (content_length < 0) content_length = 0;
    size_t connection_length = 0;
    const char *connection = header(headers, head_end + 2, "Connection", &connection_length);
    out->close = connection && connection_length == 5 && strncasecmp(connection, "close", 5) == 0;
    out->pid = header_number(headers, head_end + 2, "X-Baton-Pid");
    out->generation = header_number(headers, head_end + 2, "X-Baton-Generation");
    size_t total = (size_t)(head_end + 4 - buffer) + (size_t)content_length;
    out->total = total;
    out->complete = length >= total;
}

int connect_loopback(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0 && errno != EINPROGRESS) {
        int error = errno;
        close(fd);
        return -error;
    }
    return fd;
}
