// What the daemon's event loop, signal handling and control socket need from Linux beyond
// Swift's Glibc module: the epoll, eventfd, signalfd and timerfd headers (which that module does
// not include), epoll_pwait2, and the _GNU_SOURCE-only accept4(2), setns(2) and struct ucred, wrapped in
// daemon.c. Included by CLinuxNet.h.
#ifndef CLINUXNET_DAEMON_H
#define CLINUXNET_DAEMON_H

#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <time.h>

/// epoll_pwait2(2) without a signal mask: epoll_wait with a timeout in nanoseconds (NULL: forever).
/// -1 with errno ENOSYS where glibc or the kernel (before 5.11) lacks it.
int CLinuxNet_epoll_pwait2(int epfd, struct epoll_event *events, int maxevents,
                           const struct timespec *timeout);

/// setns(2) into the network namespace `fd` refers to (/run/netns/NAME): for the calling thread
/// only. 0, or -1 with errno.
int CLinuxNet_enter_network_namespace(int fd);

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC: a connection for the epoll loop, never
/// inherited by a child process.
int CLinuxNet_accept_nonblocking(int fd);

/// SO_PEERCRED of a connected Unix socket: the peer's pid, uid and gid when it connected.
int CLinuxNet_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid);

/// SO_PEERGROUPS (Linux 4.13+): the peer's supplementary groups, up to `capacity` of them.
/// Returns how many the peer has (more than `capacity`: call again with more room), or -1.
int CLinuxNet_peer_groups(int fd, gid_t *groups, int capacity);

#endif
