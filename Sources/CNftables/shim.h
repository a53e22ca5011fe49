// libnftables (nftables' own library, the one `nft` is built on): LinuxNet's NFTablesTable hands
// it ruleset text to run as one transaction. Debian 12: libnftables-dev 1.0.6.
#include <nftables/libnftables.h>
