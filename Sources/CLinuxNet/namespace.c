// setns(2) for Swift: declared only under _GNU_SOURCE, which Swift's Glibc module lacks.
#define _GNU_SOURCE
#include <sched.h>
#include "CLinuxNet.h"

int CLinuxNet_enterNetworkNamespace(int fd) {
    return setns(fd, CLONE_NEWNET);
}
