// Reload timing: trigger a reload, then time (on CLOCK_MONOTONIC, from the trigger) when
//   first_new   a process that was not serving before answers on the port (probe requests),
//   serving     the master says the new generation serves (control trigger: the "serving" event),
//   reply       the master's reply to `reload --wait` arrives (control trigger),
//   old_exited  the last process of the old generation has exited (pidfds on the old pids).
// Triggers: "hup:PID" (SIGHUP to baton or start_server), "control:PATH" (a reload request on
// baton's control socket), "naive" (the tool runs the worker itself and restarts it: SIGTERM, wait
// for its exit, start it again). One JSON object per reload on stdout.
#define _GNU_SOURCE
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_OLD 4096

static volatile sig_atomic_t stop_requested;
static void on_stop(int signal) { (void)signal; stop_requested = 1; }

static int pidfd_open_(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

/// The CPU time `pid` has had, in ns, summed over its threads (/proc/PID/task/TID/schedstat);
/// -1 when it cannot be read. Read after each reload has finished and before the next begins,
/// so the difference between two lines is exactly one reload's.
static long long cpu_ns_of(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *tasks = opendir(path);
    if (tasks == NULL) return -1;
    long long total = 0;
    struct dirent *entry;
    while ((entry = readdir(tasks)) != NULL) {
        if (entry->d_name[0] == '.') continue;
        char file[320];
        snprintf(file, sizeof file, "/proc/%d/task/%s/schedstat", (int)pid, entry->d_name);
        FILE *stat = fopen(file, "r");
        if (stat == NULL) continue;
        long long running = 0;
        if (fscanf(stat, "%lld", &running) == 1) total += running;
        fclose(stat);
    }
    closedir(tasks);
    return total;
}

/// The children of every thread of `parent` (from /proc/PID/task/TID/children).
static int children_of(pid_t parent, pid_t *out, int capacity) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)parent);
    DIR *tasks = opendir(path);
    if (!tasks) return 0;
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(tasks)) != NULL) {
        if (entry->d_name[0] == '.') continue;
        char file[320];
        snprintf(file, sizeof file, "/proc/%d/task/%s/children", (int)parent, entry->d_name);
        FILE *f = fopen(file, "r");
        if (!f) continue;
        long pid;
        while (count < capacity && fscanf(f, "%ld", &pid) == 1) out[count++] = (pid_t)pid;
        fclose(f);
    }
    closedir(tasks);
    return count;
}

/// One probe: GET on a new connection (blocking, bounded to 1 s). Returns the X-Baton-Pid of the
/// answer, 0 for an answer without one, -1 when there was no complete answer.
static long probe(int port, const char *path) {
    int fd = connect_loopback(port);
    if (fd < 0) return -1;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    long result = -1;
    char request[256];
    size_t length = http_request(request, sizeof request, path, 1);
    char buffer[2048];
    size_t received = 0;
    uint64_t deadline = now_ns() + 1000000000u;
    if (poll(&p, 1, 1000) != 1) goto done;
    int error = 0;
    socklen_t error_length = sizeof error;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &error_length);
    if (error != 0 || send(fd, request, length, MSG_NOSIGNAL) != (ssize_t)length) goto done;
    while (received < sizeof buffer && now_ns() < deadline) {
        p.events = POLLIN;
        if (poll(&p, 1, 100) < 0 && errno != EINTR) break;
        ssize_t n = recv(fd, buffer + received, sizeof buffer - received, MSG_DONTWAIT);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) continue;
            break;
        }
        received += (size_t)n;
        struct response response;
        http_parse(buffer, received, &response);
        if (response.malformed) break;
        if (response.complete) {
            result = response.status == 200 ? (response.pid > 0 ? response.pid : 0) : -1;
            break;
        }
    }
done:
    close(fd);
    return result;
}

static int control_connect(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket: %s", strerror(errno));
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof address.sun_path) die("control path too long: %s", path);
    strcpy(address.sun_path, path);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) die("connect %s: %s", path, strerror(errno));
    return fd;
}

static pid_t spawn_worker(char **argv) {
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        dup2(2, 1);  // stdout carries the timing lines: the worker's output goes to stderr
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/// Waits (bounded) for a child's exit; SIGKILL at the deadline. Returns when it is reaped.
static void reap(pid_t pid, uint64_t deadline) {
    while (now_ns() < deadline) {
        pid_t done = waitpid(pid, NULL, WNOHANG);
        if (done == pid || (done < 0 && errno == ECHILD)) return;
        sleep_ns(100000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

struct control_state {
    int fd;
    char buffer[65536];
    size_t length;
};

/// Reads what the control socket has; sets *serving / *reply (with *ok) when those lines came.
static void control_read(struct control_state *c, uint64_t t0, long *serving, long *reply, int *ok) {
    ssize_t n = recv(c->fd, c->buffer + c->length, sizeof c->buffer - c->length - 1, MSG_DONTWAIT);
    if (n == 0) die("the control socket closed");
    if (n < 0) return;
    c->length += (size_t)n;
    c->buffer[c->length] = 0;
    char *line = c->buffer;
    char *eol;
    while ((eol = strchr(line, '\n')) != NULL) {
        *eol = 0;
        long at = (long)((now_ns() - t0) / 1000u);
        if (strstr(line, "\"event\":\"serving\"") && *serving < 0) *serving = at;
        if (strstr(line, "\"ok\":")) {
            *reply = at;
            *ok = strstr(line, "\"ok\":true") != NULL;
        }
        line = eol + 1;
    }
    c->length -= (size_t)(line - c->buffer);
    memmove(c->buffer, line, c->length);
}

int run_timing(const struct timing_options *o) {
    struct sigaction action = {.sa_handler = on_stop};
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    signal(SIGPIPE, SIG_IGN);
    int naive = strcmp(o->trigger, "naive") == 0;
    pid_t hup_target = 0;
    struct control_state control = {.fd = -1};
    if (strncmp(o->trigger, "hup:", 4) == 0) {
        hup_target = (pid_t)atol(o->trigger + 4);
    } else if (strncmp(o->trigger, "control:", 8) == 0) {
        control.fd = control_connect(o->trigger + 8);
    } else if (!naive) {
        die("--trigger must be hup:PID, control:PATH or naive");
    }
    pid_t worker = 0;
    if (naive) {
        worker = spawn_worker(o->naive_argv);
        uint64_t deadline = now_ns() + (uint64_t)o->timeout_ms * 1000000u;
        while (probe(o->port, o->path) < 0) {
            if (now_ns() > deadline || stop_requested) die("the naive worker never served");
            sleep_ns(1000000);
        }
    }
    if (o->warmup_ms > 0) sleep_ns((uint64_t)o->warmup_ms * 1000000u);
    static pid_t old[MAX_OLD];
    static int old_fds[MAX_OLD];
    for (int i = 0; i < o->count && !stop_requested; i++) {
        int n_old = naive ? 1 : children_of(o->parent, old, MAX_OLD);
        if (naive) old[0] = worker;
        int pending = 0;
        for (int k = 0; k < n_old; k++) {
            old_fds[k] = naive ? -1 : pidfd_open_(old[k]);
            if (old_fds[k] >= 0) pending++;
        }
        long first_new = -1, serving = -1, reply = -1, old_exited = -1, spawned = -1;
        int ok = -1;
        uint64_t trigger_realtime = realtime_us();
        uint64_t t0 = now_ns();
        uint64_t deadline = t0 + (uint64_t)o->timeout_ms * 1000000u;
        if (hup_target) {
            kill(hup_target, SIGHUP);
        } else if (control.fd >= 0) {
            char request[96];
            int length = snprintf(request, sizeof request, "{\"v\":1,\"id\":%d,\"cmd\":\"reload\",\"wait\":true}\n", i + 1);
            if (send(control.fd, request, (size_t)length, MSG_NOSIGNAL) != length) die("control send: %s", strerror(errno));
        } else {
            kill(worker, SIGTERM);
            reap(worker, deadline);
            old_exited = (long)((now_ns() - t0) / 1000u);
            worker = spawn_worker(o->naive_argv);
            spawned = (long)((now_ns() - t0) / 1000u);
        }
        for (;;) {
            uint64_t now = now_ns();
            if (now >= deadline || stop_requested) break;
            int probing = o->probe && first_new < 0;
            int done = !probing && pending == 0 && (control.fd < 0 || reply >= 0);
            if (done) break;
            struct pollfd fds[MAX_OLD + 1];
            int nfds = 0;
            if (control.fd >= 0) fds[nfds++] = (struct pollfd){.fd = control.fd, .events = POLLIN};
            for (int k = 0; k < n_old; k++) {
                if (old_fds[k] >= 0) fds[nfds++] = (struct pollfd){.fd = old_fds[k], .events = POLLIN};
            }
            struct timespec wait;
            uint64_t left = deadline - now;
            uint64_t step = probing ? (uint64_t)o->probe_interval_us * 1000u : left;
            if (step > left) step = left;
            wait.tv_sec = (time_t)(step / 1000000000u);
            wait.tv_nsec = (long)(step % 1000000000u);
            int ready = ppoll(fds, (nfds_t)nfds, &wait, NULL);
            if (ready > 0) {
                for (int f = 0; f < nfds; f++) {
                    if (!(fds[f].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                    if (fds[f].fd == control.fd) {
                        control_read(&control, t0, &serving, &reply, &ok);
                        continue;
                    }
                    for (int k = 0; k < n_old; k++) {
                        if (old_fds[k] == fds[f].fd) {
                            close(old_fds[k]);
                            old_fds[k] = -1;
                            pending--;
                            if (pending == 0) old_exited = (long)((now_ns() - t0) / 1000u);
                        }
                    }
                }
            }
            if (probing) {
                long pid = probe(o->port, o->path);
                // A worker that names no pid (X-Baton-Pid) is new only when the old one is gone.
                if (pid > 0 || (pid == 0 && naive)) {
                    int is_old = 0;
                    for (int k = 0; k < n_old; k++) is_old |= old[k] == (pid_t)pid;
                    if (!is_old) first_new = (long)((now_ns() - t0) / 1000u);
                }
            }
        }
        for (int k = 0; k < n_old; k++) {
            if (old_fds[k] >= 0) close(old_fds[k]);
        }
        long long master_cpu = naive ? -1 : cpu_ns_of(o->parent);
        printf("{\"i\":%d,\"trigger_mono_us\":%llu,\"trigger_realtime_us\":%llu,\"old\":%d,\"first_new_us\":%ld,\"serving_us\":%ld,"
               "\"reply_us\":%ld,\"ok\":%d,\"old_exited_us\":%ld,\"spawned_us\":%ld,\"timed_out\":%d,\"master_cpu_ns\":%lld}\n",
               i, (unsigned long long)(t0 / 1000u), (unsigned long long)trigger_realtime, n_old, first_new, serving, reply, ok, old_exited, spawned,
               now_ns() >= deadline, master_cpu);
        fflush(stdout);
        if (o->gap_ms > 0) sleep_ns((uint64_t)o->gap_ms * 1000000u);
    }
    // A naive worker keeps serving until the tool is told to stop (so the load can end first).
    uint64_t hold_until = now_ns() + 600000000000u;
    while (naive && o->hold && !stop_requested && now_ns() < hold_until) sleep_ns(10000000);
    if (naive && worker > 0) {
        kill(worker, SIGTERM);
        reap(worker, now_ns() + 5000000000u);
    }
    return 0;
}
