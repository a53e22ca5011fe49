// The wrappers CLinuxNetDaemon.h declares, compiled with _GNU_SOURCE (accept4, setns, struct ucred).
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <sys/socket.h>
#include "CLinuxNetDaemon.h"

int CLinuxNet_epoll_pwait2(int epfd, struct epoll_event *events, int maxevents,
                           const struct timespec *timeout) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
    return epoll_pwait2(epfd, events, maxevents, timeout, NULL);
#else
    (void)epfd; (void)events; (void)maxevents; (void)timeout;
    errno = ENOSYS;
    return -1;
#endif
}

int CLinuxNet_enter_network_namespace(int fd) {
    return setns(fd, CLONE_NEWNET);
}

int CLinuxNet_accept_nonblocking(int fd) {
    return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int CLinuxNet_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid) {
    struct ucred credentials;
    socklen_t length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -1;
    *pid = credentials.pid;
    *uid = credentials.uid;
    *gid = credentials.gid;
    return 0;
}

int CLinuxNet_peer_groups(int fd, gid_t *groups, int capacity) {
    socklen_t length = (socklen_t)(capacity * (int)sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &length) == 0) {
        return (int)(length / sizeof(gid_t));
    }
    // ERANGE: `length` now says how much room the whole list needs.
    if (errno == ERANGE) return (int)(length / sizeof(gid_t));
    return -1;
}
