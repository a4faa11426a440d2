#ifndef CBATON_H
#define CBATON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <signal.h>

// ---------------------------------------------------------------------------------------------
// Spawning (spawn.c): fork + exec with fd placement, using only async-signal-safe calls in the
// child. Call from a thread that lives as long as the master (PR_SET_PDEATHSIG follows the
// forking thread).

typedef enum {
    BATON_SPAWN_STAGE_NONE = 0,
    BATON_SPAWN_STAGE_PIPE = 1,      // parent: creating the error pipe failed
    BATON_SPAWN_STAGE_FORK = 2,      // parent: fork() failed
    BATON_SPAWN_STAGE_SETSID = 3,
    BATON_SPAWN_STAGE_SETGROUPS = 4,
    BATON_SPAWN_STAGE_SETGID = 5,
    BATON_SPAWN_STAGE_SETUID = 6,
    BATON_SPAWN_STAGE_PDEATHSIG = 7, // prctl failed, or the parent died before it took effect
    BATON_SPAWN_STAGE_CHDIR = 8,
    BATON_SPAWN_STAGE_FDS = 9,       // placing fds (dup/dup2/open /dev/null/close_range)
    BATON_SPAWN_STAGE_EXEC = 10,     // execve() failed
} baton_spawn_stage;

typedef struct {
    const char *path;          // executable to execve (absolute or relative to cwd; no PATH search)
    char *const *argv;         // NULL-terminated
    char **envp;               // NULL-terminated, built by the caller
    // Index into envp of a writable buffer of at least 32 bytes that the child fills with
    // "LISTEN_PID=<its own pid>" before exec; -1 for none.
    int listen_pid_index;
    const int *fds;            // placed at 3, 4, ... 3+nfds-1 with FD_CLOEXEC cleared
    int nfds;
    int stdout_fd;             // dup2'd to 1; -1 keeps the master's fd 1
    int stderr_fd;             // dup2'd to 2; -1 keeps the master's fd 2
    const char *cwd;           // NULL keeps the master's cwd
    int change_credentials;    // nonzero: setgroups(groups), setgid(gid), setuid(uid) in that order
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    int ngroups;
    int death_signal;          // PR_SET_PDEATHSIG after the credential change; 0 for none
} baton_spawn_request;

typedef struct {
    int stage;                 // baton_spawn_stage
    int error;                 // errno
} baton_spawn_failure;

// Forks and execs. In the child: signal dispositions reset to SIG_DFL (ignored ones included),
// setsid(), credentials, PDEATHSIG with a getppid() check, chdir, stdin = /dev/null, fds placed,
// every other fd >= 3 closed (close_range, fallback: FD_CLOEXEC loop), LISTEN_PID filled, signal
// mask emptied, execve. Returns 0 once exec succeeded (the CLOEXEC error pipe reached EOF) with
// *pid set; returns -1 with *failure filled when any step failed (the failed child has then
// already been reaped with waitpid on its pid).
int baton_spawn(const baton_spawn_request *request, pid_t *pid, baton_spawn_failure *failure);

// A short static name for a stage, e.g. "execve".
const char *baton_spawn_stage_name(int stage);

// ---------------------------------------------------------------------------------------------
// Datagrams with credentials and fds (fdpass.c).

// Receives one datagram from a socket with SO_PASSCRED set. Every fd carried in SCM_RIGHTS is
// closed at once. Returns the payload length, or -1 with errno (EAGAIN when nothing is queued).
// *truncated is set when the datagram was larger than capacity (MSG_TRUNC) or fds were cut
// (MSG_CTRUNC); *pid/*uid are -1/(uid_t)-1 when no credentials came; *fds_closed counts the fds.
ssize_t baton_recv_with_credentials(int fd, void *buffer, size_t capacity, pid_t *pid, uid_t *uid,
                                    int *truncated, int *fds_closed);

// Sends one message with up to 253 fds in SCM_RIGHTS (MSG_NOSIGNAL). Returns bytes sent or -1.
ssize_t baton_send_with_fds(int fd, const void *buffer, size_t length, const int *fds, int nfds);

// Receives one message and up to max_fds fds (MSG_CMSG_CLOEXEC). Returns the payload length or -1.
// *nfds receives the fd count; *truncated as above (fds beyond max_fds are closed).
ssize_t baton_recv_with_fds(int fd, void *buffer, size_t capacity, int *fds, int max_fds, int *nfds,
                            int *truncated);

// ---------------------------------------------------------------------------------------------
// Event loop helpers (reactor.c): thin wrappers, since epoll_event is packed and the
// signalfd/timerfd headers are not in Swift's Glibc module.

typedef struct {
    uint64_t token;
    uint32_t events;
} baton_event;

enum {
    BATON_EV_IN = 0x001,
    BATON_EV_OUT = 0x004,
    BATON_EV_ERR = 0x008,
    BATON_EV_HUP = 0x010,
};

int baton_epoll_create(void);
int baton_epoll_add(int epfd, int fd, uint32_t events, uint64_t token);
int baton_epoll_modify(int epfd, int fd, uint32_t events, uint64_t token);
int baton_epoll_remove(int epfd, int fd);
// timeout_ms -1 = forever. Returns the number of events or -1 (EINTR included).
int baton_epoll_wait(int epfd, baton_event *events, int max_events, int timeout_ms);

// Blocks the given signals in the calling thread (do it before any thread starts) and returns a
// non-blocking, close-on-exec signalfd for them.
int baton_signalfd_open(const int *signals, int count);
// Reads one pending signal from a signalfd; returns the signal number, 0 when none is pending.
int baton_signalfd_read(int fd);

int baton_timerfd_create(void);
// Arms the timer at an absolute CLOCK_MONOTONIC time in nanoseconds; 0 disarms.
int baton_timerfd_arm(int fd, uint64_t deadline_ns);
// Drains the expiration count so the fd stops being readable.
void baton_timerfd_drain(int fd);

uint64_t baton_monotonic_ns(void);

// waitid(P_ALL, WEXITED|WNOHANG). Returns the pid (0 when no child has exited, -1 with errno,
// ECHILD when there are no children); *code is CLD_EXITED/CLD_KILLED/CLD_DUMPED and *status the
// exit status or signal number.
pid_t baton_reap_one(int *code, int *status);

int baton_set_child_subreaper(void);
int baton_set_nonblocking(int fd, int on);
int baton_set_cloexec(int fd, int on);

// pipe2(O_CLOEXEC) and memfd_create(MFD_CLOEXEC), which Swift's Glibc module does not export.
int baton_pipe_cloexec(int fds[2]);
int baton_memfd_cloexec(const char *name);

// A pipe for a child's output: both ends close-on-exec, the read end (kept by the master)
// non-blocking, the write end (the child's stdout or stderr) blocking as programs expect. Two
// system calls instead of the six that pipe() and fcntl() take.
int baton_output_pipe(int fds[2]);

// accept4(SOCK_CLOEXEC | SOCK_NONBLOCK), which Swift's Glibc module does not export.
int baton_accept_cloexec_nonblocking(int fd);

#endif
