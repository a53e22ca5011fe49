// recvmmsg/sendmmsg/ppoll for Swift: compiled with _GNU_SOURCE, which declares them.
// The layout of CLinuxNet_mmsghdr is checked against glibc's struct mmsghdr at compile time.
#define _GNU_SOURCE
#include <poll.h>
#include <sys/socket.h>
#include <stddef.h>
#include "CLinuxNet.h"

_Static_assert(sizeof(CLinuxNet_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr layout");
_Static_assert(offsetof(CLinuxNet_mmsghdr, msg_len) == offsetof(struct mmsghdr, msg_len), "mmsghdr layout");

int CLinuxNet_recvmmsg(int fd, CLinuxNet_mmsghdr *messages, unsigned int vlen, int flags,
                       struct timespec *timeout) {
    return recvmmsg(fd, (struct mmsghdr *)messages, vlen, flags, timeout);
}

int CLinuxNet_sendmmsg(int fd, CLinuxNet_mmsghdr *messages, unsigned int vlen, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)messages, vlen, flags);
}

int CLinuxNet_ppoll(struct pollfd *fds, nfds_t count, const struct timespec *timeout) {
    return ppoll(fds, count, timeout, NULL);
}
