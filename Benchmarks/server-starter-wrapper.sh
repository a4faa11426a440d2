#!/bin/sh
# Runs a LISTEN_FDS worker under Perl Server::Starter, unchanged: start_server passes its socket as
# SERVER_STARTER_PORT=host:port=fd; move that fd to 3 and name it the systemd way. `exec` keeps the
# pid, so LISTEN_PID=$$ is the worker's own pid.
fd=${SERVER_STARTER_PORT##*=}
[ "$fd" = 3 ] || eval "exec 3<&$fd $fd<&-"
LISTEN_FDS=1 LISTEN_PID=$$ LISTEN_FDNAMES=http exec "$@"
