#!/bin/sh
# PID 1 of the test target: the engine gives this unprivileged container read-only cgroups, which
# systemd and a Docker engine inside need writable; mount this cgroup namespace's own hierarchies
# afresh (the same controllers the engine mounted, never the host's tree), then hand over to systemd.
set -e
controllers=$(awk '$3 == "cgroup" { n = split($4, o, ","); for (i = 1; i <= n; i++) if (o[i] !~ /^(ro|rw|nosuid|nodev|noexec|relatime)$/) c = c (c ? "," : "") o[i]; print c; c = "" }' /proc/mounts)
umount -R /sys/fs/cgroup
mount -t tmpfs -o mode=755,nosuid,nodev,noexec tmpfs /sys/fs/cgroup
for options in $controllers; do
  dir=$(echo "$options" | sed 's/^name=//')
  mkdir -p "/sys/fs/cgroup/$dir"
  mount -t cgroup -o "nosuid,nodev,noexec,$options" cgroup "/sys/fs/cgroup/$dir"
done
exec /lib/systemd/systemd
