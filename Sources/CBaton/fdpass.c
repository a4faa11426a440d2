#define _GNU_SOURCE
#include "CBaton.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

// The kernel's SCM_MAX_FD: the most fds one message can carry.
#define BATON_MAX_FDS 253

// Room for credentials and a full SCM_RIGHTS message, aligned for cmsghdr.
typedef union {
    char buffer[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * BATON_MAX_FDS)];
    struct cmsghdr align;
} control_buffer;

static int rights_count(const struct cmsghdr *cmsg) {
    return (int)((cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int));
}

static int rights_fd(const struct cmsghdr *cmsg, int index) {
    int fd;
    // CMSG_DATA is not necessarily aligned for int.
    memcpy(&fd, CMSG_DATA(cmsg) + sizeof(int) * (size_t)index, sizeof fd);
    return fd;
}

ssize_t baton_recv_with_credentials(int fd, void *buffer, size_t capacity, pid_t *pid, uid_t *uid,
                                    int *truncated, int *fds_closed) {
    *pid = -1;
    *uid = (uid_t)-1;
    *truncated = 0;
    *fds_closed = 0;

    control_buffer control;
    struct iovec iov = {.iov_base = buffer, .iov_len = capacity};
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.buffer,
        .msg_controllen = sizeof control.buffer,
    };
    // MSG_TRUNC makes recvmsg return the datagram's real size; MSG_CMSG_CLOEXEC keeps stray fds
    // from leaking into a child forked before they are closed below.
    ssize_t n;
    do {
        n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;

    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET) continue;
        if (cmsg->cmsg_type == SCM_CREDENTIALS && cmsg->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
            struct ucred credentials;
            memcpy(&credentials, CMSG_DATA(cmsg), sizeof credentials);
            *pid = credentials.pid;
            *uid = credentials.uid;
        } else if (cmsg->cmsg_type == SCM_RIGHTS) {
            // Nobody asked for fds on this socket: a sender must not be able to make us hold them.
            int count = rights_count(cmsg);
            for (int i = 0; i < count; i++) close(rights_fd(cmsg, i));
            *fds_closed += count;
        }
    }
    if ((size_t)n > capacity || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) *truncated = 1;
    // The caller gets what is in the buffer; *truncated tells that there was more.
    return (size_t)n > capacity ? (ssize_t)capacity : n;
}

ssize_t baton_send_with_fds(int fd, const void *buffer, size_t length, const int *fds, int nfds) {
    if (nfds < 0 || nfds > BATON_MAX_FDS || (nfds > 0 && fds == NULL)) {
        errno = EINVAL;
        return -1;
    }
    control_buffer control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {.iov_base = (void *)buffer, .iov_len = length};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        msg.msg_control = control.buffer;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t n;
    do {
        n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
}

ssize_t baton_recv_with_fds(int fd, void *buffer, size_t capacity, int *fds, int max_fds, int *nfds,
                            int *truncated) {
    *nfds = 0;
    *truncated = 0;
    if (max_fds < 0 || (max_fds > 0 && fds == NULL)) {
        errno = EINVAL;
        return -1;
    }

    control_buffer control;
    struct iovec iov = {.iov_base = buffer, .iov_len = capacity};
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.buffer,
        .msg_controllen = sizeof control.buffer,
    };
    ssize_t n;
    do {
        n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;

    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
        int count = rights_count(cmsg);
        for (int i = 0; i < count; i++) {
            int received = rights_fd(cmsg, i);
            if (*nfds < max_fds) {
                fds[(*nfds)++] = received;
            } else {
                close(received);
                *truncated = 1;
            }
        }
    }
    if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) *truncated = 1;
    return n;
}
