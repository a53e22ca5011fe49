// The Linux calls that Swift's Glibc module does not import: recvmmsg, sendmmsg (and struct
// mmsghdr) and ppoll are declared only under _GNU_SOURCE, so this shim declares its own struct of
// the same layout and wraps the calls (mmsg.c). LinuxNet is the only user.
#ifndef CLINUXNET_H
#define CLINUXNET_H

#include <poll.h>
#include <sys/socket.h>
#include <time.h>

// epoll, eventfd, signalfd, timerfd, setns, peer credentials: for the daemon's loop and sockets.
#include "CLinuxNetDaemon.h"

/// struct mmsghdr (recvmmsg(2), sendmmsg(2)): one message of a batch and its byte count.
typedef struct {
    struct msghdr msg_hdr;
    unsigned int msg_len;
} CLinuxNet_mmsghdr;

/// recvmmsg(2): receives up to `vlen` datagrams; returns how many, or -1 with errno.
int CLinuxNet_recvmmsg(int fd, CLinuxNet_mmsghdr *messages, unsigned int vlen, int flags,
                       struct timespec *timeout);

/// sendmmsg(2): sends up to `vlen` messages; returns how many went, or -1 with errno.
int CLinuxNet_sendmmsg(int fd, CLinuxNet_mmsghdr *messages, unsigned int vlen, int flags);

/// ppoll(2) without a signal mask: poll(2) with a timeout in nanoseconds (NULL: forever), so that a
/// pacing deadline tens of microseconds away is not rounded up to a millisecond.
int CLinuxNet_ppoll(struct pollfd *fds, nfds_t count, const struct timespec *timeout);

#endif
