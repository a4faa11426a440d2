#define _GNU_SOURCE
#include "CBaton.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

// One fork at a time: keeps the window in which a child holds copies of another spawn's fds
// (before its exec closes them) as short as possible, and makes the signal-mask dance simple.
static pthread_mutex_t fork_lock = PTHREAD_MUTEX_INITIALIZER;

// Under ThreadSanitizer or AddressSanitizer (`make sanitize`) the child is forked instead: their
// runtimes keep per-thread state that a child sharing the parent's memory would corrupt (TSan
// aborts at once: "CHECK failed ... starting new threads after multi-threaded fork").
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define BATON_SPAWN_BY_FORK 1
#endif
#endif

const char *baton_spawn_stage_name(int stage) {
    switch (stage) {
    case BATON_SPAWN_STAGE_NONE: return "none";
    case BATON_SPAWN_STAGE_PIPE: return "pipe";
    case BATON_SPAWN_STAGE_FORK: return "fork";
    case BATON_SPAWN_STAGE_SETSID: return "setsid";
    case BATON_SPAWN_STAGE_SETGROUPS: return "setgroups";
    case BATON_SPAWN_STAGE_SETGID: return "setgid";
    case BATON_SPAWN_STAGE_SETUID: return "setuid";
    case BATON_SPAWN_STAGE_PDEATHSIG: return "pdeathsig";
    case BATON_SPAWN_STAGE_CHDIR: return "chdir";
    case BATON_SPAWN_STAGE_FDS: return "fds";
    case BATON_SPAWN_STAGE_EXEC: return "execve";
    default: return "unknown";
    }
}

// ---------------------------------------------------------------------------------------------
// Child side. Everything below runs between clone() and execve(): async-signal-safe calls only,
// no allocation, no locks, no stdio.
//
// The child shares the parent's memory (CLONE_VM | CLONE_VFORK, as glibc's posix_spawn does):
// the kernel then copies no page tables, which was a third of the master's CPU time per reload
// (fork of a process that maps Foundation). The parent thread is suspended until the child has
// exec'd or exited, so the child may use the request and `moved` as they are. It must change
// nothing else the parent owns: its own stack is a separate mapping, and credentials change
// through the raw system calls, because glibc's setuid/setgid/setgroups would ask every thread of
// the parent to change too (they think they run in it).

// Where a failing child reports to the parent: memory they share (CLONE_VM; the parent reads it
// once clone returns, as glibc's posix_spawn does), or a pipe when the child is forked.
typedef struct {
    volatile baton_spawn_failure *shared;
    int fd;
} child_report;

// Reports a failed stage to the parent and exits. errno is read first: nothing may clobber it.
static void child_fail(const child_report *report, int stage) {
    baton_spawn_failure failure = {.stage = stage, .error = errno};
    if (report->fd < 0) {
        report->shared->error = failure.error;
        report->shared->stage = failure.stage;
        _exit(127);
    }
    ssize_t written;
    do {
        written = write(report->fd, &failure, sizeof failure);
    } while (written < 0 && errno == EINTR);
    _exit(127);
}

// Writes "LISTEN_PID=<pid>" into buffer (at least 32 bytes) without snprintf.
static void child_format_listen_pid(char *buffer, pid_t pid) {
    static const char prefix[] = "LISTEN_PID=";
    size_t at = 0;
    for (; prefix[at] != '\0'; at++) buffer[at] = prefix[at];
    char digits[16];
    int count = 0;
    unsigned long value = (unsigned long)pid;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    while (count > 0) buffer[at++] = digits[--count];
    buffer[at] = '\0';
}

// Marks every fd >= first close-on-exec. Kernels without close_range(2) get a loop up to the
// RLIMIT_NOFILE soft limit.
static int child_cloexec_from(int first) {
    if (syscall(SYS_close_range, (unsigned int)first, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return 0;
    if (errno != ENOSYS && errno != EINVAL) return -1;
    struct rlimit limit;
    int last = 1 << 20;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < (rlim_t)last)
        last = (int)limit.rlim_cur;
    for (int fd = first; fd < last; fd++) {
        // EBADF for fds that are not open is expected and harmless.
        (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    return 0;
}

static void child_run(const baton_spawn_request *request, pid_t parent_pid, child_report *report, int *moved) {
    // Handlers of the master make no sense in the worker, and ignored signals would be inherited
    // across exec. Signals are all blocked here (the parent blocked them around fork), so no
    // handler can run before this loop finishes. The raw system call, because glibc's sigaction
    // refuses its reserved signals (32, 33), and a test runner was seen leaving 32 ignored.
    // All zeros is SIG_DFL with no flags and an empty mask, whatever the kernel struct's layout.
    const unsigned long default_action[8] = {0};
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        (void)syscall(SYS_rt_sigaction, sig, default_action, NULL, (size_t)((NSIG - 1) / 8));
    }

    if (setsid() < 0) child_fail(report, BATON_SPAWN_STAGE_SETSID);

    if (request->change_credentials) {
        if (syscall(SYS_setgroups, (size_t)request->ngroups, request->groups) < 0)
            child_fail(report, BATON_SPAWN_STAGE_SETGROUPS);
        if (syscall(SYS_setgid, request->gid) < 0) child_fail(report, BATON_SPAWN_STAGE_SETGID);
        if (syscall(SYS_setuid, request->uid) < 0) child_fail(report, BATON_SPAWN_STAGE_SETUID);
    }

    // After the credential change, which clears the parent-death signal.
    if (request->death_signal != 0) {
        if (prctl(PR_SET_PDEATHSIG, (unsigned long)request->death_signal, 0, 0, 0) < 0)
            child_fail(report, BATON_SPAWN_STAGE_PDEATHSIG);
        // The parent may have died before prctl took effect: then nobody would signal us.
        if (getppid() != parent_pid) {
            errno = ESRCH;
            child_fail(report, BATON_SPAWN_STAGE_PDEATHSIG);
        }
    }

    if (request->cwd != NULL && chdir(request->cwd) < 0) child_fail(report, BATON_SPAWN_STAGE_CHDIR);

    // Move the report pipe (if any) and every source above the highest target first, so that placing one
    // fd can never overwrite a source still to be placed, and so that no dup2(fd, fd) happens
    // (it would leave FD_CLOEXEC set). The copies are close-on-exec.
    const int nfds = request->nfds;
    const int first_free = 3 + nfds;
    if (report->fd >= 0) {
        int moved_report_fd = fcntl(report->fd, F_DUPFD_CLOEXEC, first_free);
        if (moved_report_fd < 0) child_fail(report, BATON_SPAWN_STAGE_FDS);
        report->fd = moved_report_fd;
    }
    for (int i = 0; i < nfds; i++) {
        moved[i] = fcntl(request->fds[i], F_DUPFD_CLOEXEC, first_free);
        if (moved[i] < 0) child_fail(report, BATON_SPAWN_STAGE_FDS);
    }
    int stdout_fd = -1, stderr_fd = -1;
    if (request->stdout_fd >= 0) {
        stdout_fd = fcntl(request->stdout_fd, F_DUPFD_CLOEXEC, first_free);
        if (stdout_fd < 0) child_fail(report, BATON_SPAWN_STAGE_FDS);
    }
    if (request->stderr_fd >= 0) {
        stderr_fd = fcntl(request->stderr_fd, F_DUPFD_CLOEXEC, first_free);
        if (stderr_fd < 0) child_fail(report, BATON_SPAWN_STAGE_FDS);
    }

    // stdin: without O_CLOEXEC, since it may land on 0 directly.
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0) child_fail(report, BATON_SPAWN_STAGE_FDS);
    if (null_fd != 0) {
        if (dup2(null_fd, 0) < 0) child_fail(report, BATON_SPAWN_STAGE_FDS);
        close(null_fd);
    }
    if (stdout_fd >= 0 && dup2(stdout_fd, 1) < 0) child_fail(report, BATON_SPAWN_STAGE_FDS);
    if (stderr_fd >= 0 && dup2(stderr_fd, 2) < 0) child_fail(report, BATON_SPAWN_STAGE_FDS);
    for (int i = 0; i < nfds; i++) {
        // moved[i] >= first_free > 3 + i, so dup2 always clears FD_CLOEXEC on the target.
        if (dup2(moved[i], 3 + i) < 0) child_fail(report, BATON_SPAWN_STAGE_FDS);
    }
    // Everything at first_free and above (the moved copies and the report pipe included) goes
    // away at exec; the report pipe stays usable until then.
    if (child_cloexec_from(first_free) < 0) child_fail(report, BATON_SPAWN_STAGE_FDS);

    if (request->listen_pid_index >= 0)
        child_format_listen_pid(request->envp[request->listen_pid_index], getpid());

    sigset_t empty;
    sigemptyset(&empty);
    (void)sigprocmask(SIG_SETMASK, &empty, NULL);

    execve(request->path, request->argv, request->envp);
    child_fail(report, BATON_SPAWN_STAGE_EXEC);
}

// What clone() hands to the child: everything child_run needs, prepared by the parent.
typedef struct {
    const baton_spawn_request *request;
    pid_t parent_pid;
    int report_read_fd;
    child_report report;
    int *moved;
} child_arguments;

static int child_entry(void *argument) {
    child_arguments *a = argument;
    if (a->report_read_fd >= 0) close(a->report_read_fd);
    child_run(a->request, a->parent_pid, &a->report, a->moved);
    _exit(127); // not reached
}

// ---------------------------------------------------------------------------------------------
// Parent side.

// The child's stack: child_run needs little (no recursion, a few small arrays). One static stack,
// used under fork_lock, saves an mmap and a munmap (and their page faults) per spawn.
#ifndef BATON_SPAWN_BY_FORK
#define CHILD_STACK_SIZE (64 * 1024)
static char child_stack[CHILD_STACK_SIZE] __attribute__((aligned(64)));
#endif

static int fail(baton_spawn_failure *failure, int stage, int error) {
    failure->stage = stage;
    failure->error = error;
    errno = error;
    return -1;
}

#ifdef BATON_SPAWN_BY_FORK
// A forked child shares no memory: it reports through a pipe, whose end of file means exec.
static int read_fork_report(int fd, pid_t child, baton_spawn_failure *record) {
    size_t have = 0;
    int read_error = 0;
    while (have < sizeof *record) {
        ssize_t n = read(fd, (char *)record + have, sizeof *record - have);
        if (n > 0) {
            have += (size_t)n;
        } else if (n == 0) {
            break;
        } else if (errno != EINTR) {
            read_error = errno;
            break;
        }
    }
    if (have == 0 && read_error == 0) return 0;
    if (have < sizeof *record) {
        // Cannot tell what the child is doing: do not leave it running half set up.
        kill(child, SIGKILL);
        record->stage = BATON_SPAWN_STAGE_PIPE;
        record->error = read_error != 0 ? read_error : EIO;
    }
    return -1;
}
#endif

int baton_spawn(const baton_spawn_request *request, pid_t *pid, baton_spawn_failure *failure) {
    failure->stage = BATON_SPAWN_STAGE_NONE;
    failure->error = 0;
    if (request->nfds < 0 || request->nfds > 65536 || (request->nfds > 0 && request->fds == NULL) ||
        (request->change_credentials && request->ngroups < 0))
        return fail(failure, BATON_SPAWN_STAGE_FDS, EINVAL);

    // Everything the child needs is allocated here, before clone.
    int *moved = malloc(sizeof(int) * (size_t)(request->nfds > 0 ? request->nfds : 1));
    if (moved == NULL) return fail(failure, BATON_SPAWN_STAGE_FORK, ENOMEM);

    volatile baton_spawn_failure shared = {.stage = BATON_SPAWN_STAGE_NONE, .error = 0};
    child_arguments arguments = {.request = request, .report_read_fd = -1,
                                 .report = {.shared = &shared, .fd = -1}, .moved = moved};
#ifdef BATON_SPAWN_BY_FORK
    int report_pipe[2];
    if (pipe2(report_pipe, O_CLOEXEC) < 0) {
        int error = errno;
        free(moved);
        return fail(failure, BATON_SPAWN_STAGE_PIPE, error);
    }
    arguments.report_read_fd = report_pipe[0];
    arguments.report.fd = report_pipe[1];
#endif

    sigset_t all, previous;
    sigfillset(&all);
    pthread_mutex_lock(&fork_lock);
    // No handler of the master may run in the child before its dispositions are reset.
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    arguments.parent_pid = getpid();
#ifdef BATON_SPAWN_BY_FORK
    const pid_t child = fork();
    if (child == 0) child_entry(&arguments);
#else
    // Returns once the child has exec'd or exited (CLONE_VFORK). The stack grows down.
    const pid_t child = clone(child_entry, child_stack + CHILD_STACK_SIZE, CLONE_VM | CLONE_VFORK | SIGCHLD,
                              &arguments);
#endif
    const int fork_error = errno;
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    pthread_mutex_unlock(&fork_lock);
    free(moved);

    baton_spawn_failure record = {.stage = shared.stage, .error = shared.error};
    int failed = record.stage != BATON_SPAWN_STAGE_NONE;
#ifdef BATON_SPAWN_BY_FORK
    close(report_pipe[1]);
    if (child >= 0) failed = read_fork_report(report_pipe[0], child, &record) < 0;
    close(report_pipe[0]);
#endif
    if (child < 0) return fail(failure, BATON_SPAWN_STAGE_FORK, fork_error);
    if (!failed) {
        *pid = child;
        return 0;
    }
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    return fail(failure, record.stage, record.error);
}
