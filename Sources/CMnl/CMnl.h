// libmnl and the rtnetlink headers for Swift (LinuxNet's RouteNetlink and NetlinkMonitor are the
// only users). The netlink length macros (NLMSG_HDRLEN, NLMSG_ALIGN, NLA_ALIGN, MNL_SOCKET_*)
// are function-like, so Swift does not import them: the inline helpers below stand in for the
// few we need. Everything else (mnl_* functions, RTM_*, IFLA_*, IFA_*, RTA_* constants) imports.
#ifndef CMNL_H
#define CMNL_H

// <net/if.h> before the <linux/...> headers: glibc then keeps the kernel's duplicate IFF_*
// and struct ifreq definitions out.
#include <net/if.h>
#include <stddef.h>
#include <stdint.h>
#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_link.h>
#include <linux/if_addr.h>

/// IFF_LOWER_UP (<linux/if.h>, which clashes with <net/if.h>): the driver reports carrier.
#define CMnl_IFF_LOWER_UP 0x10000

/// NLMSG_ALIGN / MNL_ALIGN: netlink messages and attributes start on 4-byte boundaries.
static inline size_t CMnl_align(size_t length) { return MNL_ALIGN(length); }

/// NLMSG_HDRLEN: the aligned size of struct nlmsghdr, where a message's payload starts.
static inline size_t CMnl_messageHeaderLength(void) { return MNL_NLMSG_HDRLEN; }

/// NLA_HDRLEN: the aligned size of struct nlattr, where an attribute's payload starts.
static inline size_t CMnl_attributeHeaderLength(void) { return MNL_ATTR_HDRLEN; }

/// NLM_F_DUMP (NLM_F_ROOT | NLM_F_MATCH), spelled out for Swift.
static inline uint16_t CMnl_dumpFlags(void) { return NLM_F_DUMP; }

#endif
