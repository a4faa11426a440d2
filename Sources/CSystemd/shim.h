#ifndef BATON_CSYSTEMD_SHIM_H
#define BATON_CSYSTEMD_SHIM_H
// libsystemd's sd-daemon API (Debian: libsystemd-dev): sd_notify, sd_listen_fds_with_names, ...
#include <systemd/sd-daemon.h>
#endif
