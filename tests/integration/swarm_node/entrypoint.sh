#!/bin/sh
# The node's own Docker engine. The node container is not --privileged (the test host's bounding
# set lacks CAP_SYS_RESOURCE, which --privileged would ask for), so Docker mounted its cgroup
# hierarchies read-only: mount them again, writable, inside the node's own cgroup namespace, so the
# engine can give each of its containers its limits.
set -eu
for dir in /sys/fs/cgroup/*; do
  if mountpoint -q "$dir"; then
    options=$(awk -v d="$dir" '$5 == d {print $NF}' /proc/self/mountinfo | tr ',' '\n' | grep -v -E '^(rw|ro)$' | paste -sd, -)
    umount "$dir"
    mount -t cgroup -o "rw,nosuid,nodev,noexec,$options" cgroup "$dir"
  fi
done
# TCP on the test's own network only (the test creates and removes that bridge), and
# no-new-privileges for every container this engine runs: the wall swarm services cannot ask for
# themselves on Docker 20.10.
exec dockerd --host=unix:///var/run/docker.sock --host=tcp://0.0.0.0:2375 \
  --storage-driver=overlay2 --no-new-privileges --log-level=warn "$@"
