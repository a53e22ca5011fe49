// AF_PACKET raw sockets for tquic-netem's bridge: the sockaddr_ll bind, the packet_mreq for
// promiscuous mode, PACKET_IGNORE_OUTGOING, PACKET_VNET_HDR, PACKET_STATISTICS and SIOCGIFMTU (struct ifreq is a
// union Swift does not import well), the SCM_TIMESTAMPNS control message (CMSG_* are macros), and
// prctl(PR_SET_TIMERSLACK) (variadic).
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <linux/if_packet.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include "CLinuxNet.h"

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

int CLinuxNet_packetSocketOpen(const char *interface, int bufferBytes, int offloadHeader, int *index, int *mtu) {
    unsigned int ifindex = if_nametoindex(interface);
    if (ifindex == 0) return -1;
    // Protocol 0 until bound: a socket opened with ETH_P_ALL would queue every interface's
    // frames in the moment before bind.
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    if (bufferBytes > 0) {
        // FORCE (CAP_NET_ADMIN) goes past net.core.rmem_max/wmem_max; the plain one is the fallback.
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufferBytes, sizeof bufferBytes) != 0)
            (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufferBytes, sizeof bufferBytes);
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufferBytes, sizeof bufferBytes) != 0)
            (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufferBytes, sizeof bufferBytes);
    }
    if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) != 0) goto fail;
    if (offloadHeader && setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) != 0) goto fail;
    // The kernel's receive time of each frame (CLOCK_REALTIME), as a control message.
    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) != 0) goto fail;
    struct sockaddr_ll address;
    memset(&address, 0, sizeof address);
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(ETH_P_ALL);
    address.sll_ifindex = (int)ifindex;
    if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0) goto fail;
    struct packet_mreq membership;
    memset(&membership, 0, sizeof membership);
    membership.mr_ifindex = (int)ifindex;
    membership.mr_type = PACKET_MR_PROMISC;
    if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &membership, sizeof membership) != 0) goto fail;
    struct ifreq request;
    memset(&request, 0, sizeof request);
    strncpy(request.ifr_name, interface, IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFMTU, &request) != 0) goto fail;
    *index = (int)ifindex;
    *mtu = request.ifr_mtu;
    return fd;
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int CLinuxNet_packetSocketDrops(int fd, unsigned int *received, unsigned int *dropped) {
    struct tpacket_stats stats;
    socklen_t length = sizeof stats;
    if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &stats, &length) != 0) return -1;
    *received = stats.tp_packets;
    *dropped = stats.tp_drops;
    return 0;
}

long long CLinuxNet_receiveTimestamp(const struct msghdr *message) {
    if (message->msg_controllen == 0) return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)message); c != NULL;
         c = CMSG_NXTHDR((struct msghdr *)message, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS &&
            c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
            struct timespec t;
            memcpy(&t, CMSG_DATA(c), sizeof t);
            return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
        }
    }
    return -1;
}

int CLinuxNet_setTimerSlack(unsigned long nanoseconds) {
    return prctl(PR_SET_TIMERSLACK, nanoseconds, 0, 0, 0);
}
