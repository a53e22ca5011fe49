// TUNSETIFF for Swift: ioctl(2) is variadic and struct ifreq is a union of unions, neither of
// which Swift calls comfortably, so TUNDevice.swift opens /dev/net/tun and asks this to attach it.
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include "CLinuxNet.h"

_Static_assert(CLinuxNet_interfaceNameCapacity == IFNAMSIZ, "IFNAMSIZ");

int CLinuxNet_tunAttach(int fd, const char *requested, char *actual, int virtioHeader) {
    struct ifreq request;
    memset(&request, 0, sizeof request);
    if (strlen(requested) >= IFNAMSIZ) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strncpy(request.ifr_name, requested, IFNAMSIZ - 1);
    request.ifr_flags = IFF_TUN | IFF_NO_PI | (virtioHeader ? IFF_VNET_HDR : 0);
    if (ioctl(fd, TUNSETIFF, &request) < 0) return -1;
    memcpy(actual, request.ifr_name, IFNAMSIZ);
    actual[IFNAMSIZ - 1] = '\0';
    return 0;
}

_Static_assert(CLinuxNet_tunOffloadChecksum == TUN_F_CSUM, "TUN_F_CSUM");
_Static_assert(CLinuxNet_tunOffloadTSO4 == TUN_F_TSO4, "TUN_F_TSO4");
_Static_assert(CLinuxNet_tunOffloadTSO6 == TUN_F_TSO6, "TUN_F_TSO6");
_Static_assert(CLinuxNet_tunOffloadTSOECN == TUN_F_TSO_ECN, "TUN_F_TSO_ECN");

int CLinuxNet_tunSetOffload(int fd, unsigned flags, int headerSize) {
    if (ioctl(fd, TUNSETVNETHDRSZ, &headerSize) < 0) return -1;
    return ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags);
}
