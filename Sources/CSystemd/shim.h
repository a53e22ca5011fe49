// libsystemd's sd-daemon part: sd_notify(3) and sd_watchdog_enabled(3) for LinuxNet's
// SystemdNotifier (tquicd runs as Type=notify). Debian 12: libsystemd-dev 252.
#include <systemd/sd-daemon.h>
