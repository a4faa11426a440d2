#!/bin/sh
# systemd-in-a-namespace.sh: boot a throw-away systemd 252 as PID 1 of a private PID+mount
# namespace, for unit-file integration tests of baton.
#
# WARNING - read before use
#   * Use this ONLY for the project's own unit tests. It runs as root, and the namespace shares
#     the host's root filesystem: whatever is not hidden or masked below acts on the real machine.
#   * Keep every work file (WORKDIR, test binaries, logs, sockets) OUTSIDE /tmp and /var/tmp.
#     Inside the namespace both are empty tmpfs mounts, so files there are invisible to the units.
#     The script refuses a WORKDIR under /tmp, /var/tmp or /var/log/journal.
#   * Do not remove any mount or mask below. Without them, any unit with default dependencies
#     (for example one created by systemd-run) pulls in sysinit.target, whose units act on the
#     host: systemd-tmpfiles --remove empties /tmp, systemd-sysctl changes global sysctls,
#     systemd-binfmt registers binfmt_misc entries, journald writes /var/log/journal and
#     systemd-update-utmp appends to /var/log/wtmp.
#   * Give test units DefaultDependencies=no anyway.
#
# Usage: systemd-in-a-namespace.sh WORKDIR
#   WORKDIR is required. The script uses:
#     WORKDIR/units/       your test units, plus sdtest.target (created if missing) and the masks
#                          below; bind-mounted over /etc/systemd/system inside the namespace
#     WORKDIR/boot.log     output of the namespaced systemd
#     WORKDIR/systemd.pid  host PID of the namespaced systemd (also printed on stdout)
#   Drive it:  nsenter -t PID -m -p -- systemctl start my-test.service
#              nsenter -t PID -m -p -- systemctl status my-test.service
#   Stop it:   kill -KILL PID     (killing the namespace's init ends every process in it)
#   There is no D-Bus inside: plain systemctl and systemd-run work (via /run/systemd/private);
#   systemd-run --wait and property watches do not.
#   Log from test units with StandardOutput=append:WORKDIR/NAME.log.
# Requires: root, util-linux (unshare, nsenter), procps (pgrep), /lib/systemd/systemd, and an
# existing /var/log/journal directory (it gets a tmpfs inside the namespace).
set -eu

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 WORKDIR   (WORKDIR must be outside /tmp, /var/tmp and /var/log/journal)" >&2
    exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "$0: must run as root" >&2
    exit 1
fi
WORK=$(realpath -m -- "$1")
case "$WORK/" in
    /tmp/*|/var/tmp/*|/var/log/journal/*)
        echo "$0: WORKDIR $WORK is hidden by a tmpfs inside the namespace; choose a directory outside /tmp, /var/tmp and /var/log/journal" >&2
        exit 1 ;;
esac
if [ ! -d /var/log/journal ]; then
    echo "$0: /var/log/journal does not exist; it is needed as the mount point for the journal tmpfs" >&2
    exit 1
fi

UNITS=$WORK/units
mkdir -p "$UNITS"
# Masks: every unit that would change global state on the shared host filesystem or kernel.
for u in systemd-tmpfiles-setup.service systemd-tmpfiles-setup-dev.service systemd-tmpfiles-clean.timer \
         systemd-sysctl.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount \
         systemd-modules-load.service systemd-remount-fs.service systemd-sysusers.service systemd-journal-flush.service \
         systemd-update-utmp.service systemd-random-seed.service systemd-firstboot.service systemd-machine-id-commit.service \
         ldconfig.service systemd-udevd.service systemd-udev-trigger.service systemd-hwdb-update.service \
         systemd-journal-catalog-update.service systemd-update-done.service systemd-pstore.service kmod-static-nodes.service \
         dev-hugepages.mount dev-mqueue.mount sys-kernel-debug.mount sys-kernel-tracing.mount sys-fs-fuse-connections.mount \
         sys-kernel-config.mount systemd-timesyncd.service; do
    ln -sf /dev/null "$UNITS/$u"
done
[ -e "$UNITS/sdtest.target" ] ||
    printf '[Unit]\nDescription=minimal boot target for unit tests\nDefaultDependencies=no\n' >"$UNITS/sdtest.target"

# tmpfs over /tmp, /var/tmp and /var/log/journal, private unit directory over /etc/systemd/system;
# systemd is exec'd only if every mount succeeded.
unshare --pid --fork --mount --propagation private --mount-proc -- sh -c '
    mount -t tmpfs tmpfs /tmp &&
    mount -t tmpfs tmpfs /var/tmp &&
    mount -t tmpfs tmpfs /var/log/journal &&
    mount --bind "$1" /etc/systemd/system &&
    exec env container=unshare /lib/systemd/systemd --system --unit=sdtest.target' sh "$UNITS" \
    >"$WORK/boot.log" 2>&1 &
UNSHARE=$!
# Wait (at most 30 s, for a loaded machine) until unshare's child has become systemd: the mounts
# are done and systemd was exec'd. It still needs a moment to answer systemctl after that.
SD=
tries=0
while :; do
    SD=$(pgrep -P "$UNSHARE" || true)
    if [ -n "$SD" ] && [ "$(cat "/proc/$SD/comm" 2>/dev/null)" = systemd ]; then
        break
    fi
    tries=$((tries + 1))
    if [ "$tries" -ge 300 ] || ! kill -0 "$UNSHARE" 2>/dev/null; then
        echo "$0: the namespaced systemd did not start; see $WORK/boot.log" >&2
        [ -z "$SD" ] || kill -KILL "$SD" 2>/dev/null || true
        exit 1
    fi
    sleep 0.1
done
echo "$SD" >"$WORK/systemd.pid"
echo "$SD"
