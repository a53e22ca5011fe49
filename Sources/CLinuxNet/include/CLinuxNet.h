// The Linux calls that Swift's Glibc module does not import: recvmmsg, sendmmsg (and struct
// mmsghdr), ppoll and setns are declared only under _GNU_SOURCE, so this shim declares its own
// struct of the same layout and wraps the calls (mmsg.c, namespace.c); the TUNSETIFF ioctl is
// variadic and takes a union-heavy struct ifreq (tun.c). LinuxNet is the only user.
#ifndef CLINUXNET_H
#define CLINUXNET_H

#include <poll.h>
#include <sys/socket.h>
#include <time.h>

// epoll, eventfd, signalfd, timerfd, setns, peer credentials: for the daemon's loop and sockets.
#include "CLinuxNetDaemon.h"

/// Socket types and their flags as plain constants. glibc declares them in an enum of
/// <bits/socket_type.h>, and Swift attributes that enum to whichever Clang module includes
/// <sys/socket.h> first in a build (Glibc, CLinuxNet, CMnl, CNftables, CSystemd): a clean build
/// could then not see SOCK_DGRAM from a file that imports only Glibc and CLinuxNet.
enum {
    CLinuxNet_SOCK_STREAM = SOCK_STREAM,
    CLinuxNet_SOCK_DGRAM = SOCK_DGRAM,
    CLinuxNet_SOCK_RAW = SOCK_RAW,
    CLinuxNet_SOCK_NONBLOCK = SOCK_NONBLOCK,
    CLinuxNet_SOCK_CLOEXEC = SOCK_CLOEXEC,
};

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

/// IFNAMSIZ: room for an interface name and its terminating NUL.
#define CLinuxNet_interfaceNameCapacity 16

/// TUNSETIFF on an open /dev/net/tun descriptor with IFF_TUN | IFF_NO_PI (and IFF_VNET_HDR when
/// `virtioHeader` is nonzero: every read and write then starts with a struct virtio_net_hdr):
/// attaches it to the TUN interface `requested` (created if absent; a "%d" in the name lets the
/// kernel number it) and writes the name the kernel chose into `actual`
/// (CLinuxNet_interfaceNameCapacity bytes). Returns 0, or -1 with errno (ENAMETOOLONG for a name
/// of 16 bytes or more).
int CLinuxNet_tunAttach(int fd, const char *requested, char *actual, int virtioHeader);

/// TUN_F_* of <linux/if_tun.h>: what the kernel may hand over unfinished (tun.c checks them).
#define CLinuxNet_tunOffloadChecksum 0x01
#define CLinuxNet_tunOffloadTSO4 0x02
#define CLinuxNet_tunOffloadTSO6 0x04
#define CLinuxNet_tunOffloadTSOECN 0x08

/// TUNSETVNETHDRSZ `headerSize`, then TUNSETOFFLOAD `flags` (TUN_F_*) on a TUN attached with a
/// virtio header. Returns 0, or -1 with errno (EINVAL: an offload this kernel lacks).
int CLinuxNet_tunSetOffload(int fd, unsigned flags, int headerSize);

/// setns(fd, CLONE_NEWNET): moves the calling thread (only) into the network namespace `fd`
/// refers to (an open /run/netns/<name>). Returns 0, or -1 with errno.
int CLinuxNet_enterNetworkNamespace(int fd);

/// An AF_PACKET SOCK_RAW socket for every protocol (ETH_P_ALL) on `interface`, non-blocking:
/// bound to its index, PACKET_IGNORE_OUTGOING (its own sends and the host's are not read back),
/// the interface in promiscuous mode while the socket is open, SO_TIMESTAMPNS (each received
/// frame carries the kernel's receive time), receive and send buffers of
/// `bufferBytes` (0: the defaults); with `offloadHeader`, PACKET_VNET_HDR (a struct
/// virtio_net_hdr before each frame read or written: checksum and GSO metadata). Writes the
/// interface's index and MTU. Returns the descriptor, or -1 with errno (ENODEV: no such
/// interface; EPERM: not CAP_NET_RAW). (packet.c)
int CLinuxNet_packetSocketOpen(const char *interface, int bufferBytes, int offloadHeader, int *index, int *mtu);

/// PACKET_STATISTICS: frames the socket received and frames the kernel dropped because its
/// receive queue was full, since the last call (reading resets them). 0, or -1 with errno.
int CLinuxNet_packetSocketDrops(int fd, unsigned int *received, unsigned int *dropped);

/// The SCM_TIMESTAMPNS time (CLOCK_REALTIME nanoseconds) in a received message's control data,
/// or -1 when it has none. (packet.c)
long long CLinuxNet_receiveTimestamp(const struct msghdr *message);

/// prctl(PR_SET_TIMERSLACK): how late the kernel may wake the calling thread's timed waits
/// (default 50 µs). 0, or -1 with errno.
int CLinuxNet_setTimerSlack(unsigned long nanoseconds);

#endif
