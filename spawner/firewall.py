"""Host firewall rules that leave a workspace one door: the hub's API port.

Docker's internal networks already stop forwarding (no route out, no other bridge), but the host
itself answers on every bridge's gateway address: any service it runs (the proxy's API, SSH, a
database, the DNS forwarder) would be in reach. These rules drop everything workspaces send to the
host except the hub's API and replies to connections the host opened (the proxy's).

The TRE names its project bridges ``tre<instance><project>`` (see ``plan.bridge_name``), so one
wildcard rule per installation covers every project network, present and future.
"""

from __future__ import annotations

import shutil
import subprocess

from spawner.plan import bridge_prefix


def chain_name(instance: str) -> str:
    return f"TRE-{bridge_prefix(instance)[3:]}"


def rules(instance: str, hub_port: int) -> list[list[str]]:
    """The chain's rules, in order (arguments to ``iptables -A <chain>``)."""
    return [
        ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
        ["-p", "tcp", "--dport", str(hub_port), "-m", "conntrack", "--ctstate", "NEW", "-j", "ACCEPT"],
        ["-j", "DROP"],
    ]


def _iptables(binary: str, *args: str, check: bool = True) -> bool:
    result = subprocess.run([binary, "-w", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{binary} {' '.join(args)} failed: {result.stderr.strip()}")
    return result.returncode == 0


def install(instance: str, hub_port: int) -> None:
    """Create (or refresh) this installation's chain and hook it into INPUT; idempotent."""
    chain, interfaces = chain_name(instance), f"{bridge_prefix(instance)}+"
    binary = _binary("iptables")
    if not _iptables(binary, "-n", "-L", chain, check=False):
        _iptables(binary, "-N", chain)
    _iptables(binary, "-F", chain)
    for rule in rules(instance, hub_port):
        _iptables(binary, "-A", chain, *rule)
    if not _iptables(binary, "-C", "INPUT", "-i", interfaces, "-j", chain, check=False):
        _iptables(binary, "-I", "INPUT", "1", "-i", interfaces, "-j", chain)
    ip6 = shutil.which("ip6tables")
    # workspaces have no IPv6 addresses; if a bridge ever gets one, the host still answers nothing
    if ip6 and not _iptables(ip6, "-C", "INPUT", "-i", interfaces, "-j", "DROP", check=False):
        _iptables(ip6, "-I", "INPUT", "1", "-i", interfaces, "-j", "DROP", check=False)


def remove(instance: str) -> None:
    """Remove everything ``install`` added; idempotent."""
    chain, interfaces = chain_name(instance), f"{bridge_prefix(instance)}+"
    binary = _binary("iptables")
    while _iptables(binary, "-D", "INPUT", "-i", interfaces, "-j", chain, check=False):
        pass
    if _iptables(binary, "-n", "-L", chain, check=False):
        _iptables(binary, "-F", chain)
        _iptables(binary, "-X", chain)
    ip6 = shutil.which("ip6tables")
    while ip6 and _iptables(ip6, "-D", "INPUT", "-i", interfaces, "-j", "DROP", check=False):
        pass


def installed_rules(instance: str) -> list[str]:
    """The chain as iptables lists it (``-S``), for people and tests to read."""
    result = subprocess.run([_binary("iptables"), "-w", "-S", chain_name(instance)], capture_output=True, text=True)
    return result.stdout.splitlines() if result.returncode == 0 else []


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not found:
        raise RuntimeError(f"{name} is not installed; install Debian's iptables package (./setup.sh does).")
    return found
