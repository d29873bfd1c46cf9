"""Host firewall rules that leave a workspace two doors: the hub's API port and the package index's.

Docker's internal networks already stop forwarding (no route out, no other bridge), but the host
itself answers on every bridge's gateway address: any service it runs (the proxy's API, SSH, a
database, the DNS forwarder) would be in reach. These rules drop everything workspaces send to the
host except the hub's API, the package index (``package_index``, when its port is given) and
replies to connections the host opened (the proxy's).

The hub and the index listen on all addresses so that every project's gateway reaches them; a
second chain keeps their ports to the loopback interface and the project bridges, so that other machines on the host's
network never see the hub's own pages, which the proxy serves on 127.0.0.1 only.

The TRE names its project bridges ``tre<instance><project>`` (see ``tre_core.labels.bridge_name``), so one
wildcard rule per installation covers every project network, present and future.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import partial

from tre_core.labels import bridge_prefix


def chain_name(instance: str) -> str:
    return f"TRE-{bridge_prefix(instance)[3:]}"


def hub_chain_name(instance: str) -> str:
    return f"{chain_name(instance)}-HUB"


def rules(instance: str, hub_port: int, *more_ports: int) -> list[list[str]]:
    """The chain's rules, in order (arguments to ``iptables -A <chain>``)."""
    return [
        ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
        *[["-p", "tcp", "--dport", str(port), "-m", "conntrack", "--ctstate", "NEW", "-j", "ACCEPT"]
          for port in (hub_port, *more_ports)],
        ["-j", "DROP"],
    ]


def hub_rules(instance: str) -> list[list[str]]:
    """Who may open the hub's port: the host itself and this installation's workspaces."""
    return [["-i", "lo", "-j", "RETURN"], ["-i", f"{bridge_prefix(instance)}+", "-j", "RETURN"], ["-j", "DROP"]]


def _hooks(instance: str, hub_port: int, *more_ports: int) -> list[list[str]]:
    """The INPUT rules that send traffic to the two chains (arguments after ``INPUT``)."""
    return [["-i", f"{bridge_prefix(instance)}+", "-j", chain_name(instance)],
            *[["-p", "tcp", "--dport", str(port), "-j", hub_chain_name(instance)] for port in (hub_port, *more_ports)]]


def _iptables(binary: str, *args: str, check: bool = True) -> bool:
    result = subprocess.run([binary, "-w", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{binary} {' '.join(args)} failed: {result.stderr.strip()}")
    return result.returncode == 0


def install(instance: str, hub_port: int, *more_ports: int) -> None:
    """Create (or refresh) this installation's chain and hook it into INPUT; idempotent.

    ``more_ports`` are other services workspaces reach on their gateway (the package index)."""
    interfaces = f"{bridge_prefix(instance)}+"
    binary = _binary("iptables")
    for chain, chain_rules in ((chain_name(instance), rules(instance, hub_port, *more_ports)), (hub_chain_name(instance), hub_rules(instance))):
        if not _iptables(binary, "-n", "-L", chain, check=False):
            _iptables(binary, "-N", chain)
        _iptables(binary, "-F", chain)
        for rule in chain_rules:
            _iptables(binary, "-A", chain, *rule)
    for hook in _hooks(instance, hub_port, *more_ports):
        if not _iptables(binary, "-C", "INPUT", *hook, check=False):
            _iptables(binary, "-I", "INPUT", "1", *hook)
    ip6 = shutil.which("ip6tables")
    # workspaces have no IPv6 addresses; if a bridge ever gets one, the host still answers nothing
    if ip6 and not _iptables(ip6, "-C", "INPUT", "-i", interfaces, "-j", "DROP", check=False):
        _iptables(ip6, "-I", "INPUT", "1", "-i", interfaces, "-j", "DROP", check=False)


def remove(instance: str) -> None:
    """Remove everything ``install`` added, whatever hub port it was installed for; idempotent."""
    interfaces = f"{bridge_prefix(instance)}+"
    binary = _binary("iptables")
    for chain in (chain_name(instance), hub_chain_name(instance)):
        listed = subprocess.run([binary, "-w", "-S", "INPUT"], capture_output=True, text=True).stdout.splitlines()
        for line in listed:
            if line.startswith("-A INPUT ") and line.endswith(f"-j {chain}"):
                _iptables(binary, "-D", "INPUT", *line.split()[2:], check=False)
        if _iptables(binary, "-n", "-L", chain, check=False):
            _iptables(binary, "-F", chain)
            _iptables(binary, "-X", chain)
    ip6 = shutil.which("ip6tables")
    while ip6 and _iptables(ip6, "-D", "INPUT", "-i", interfaces, "-j", "DROP", check=False):
        pass


def is_installed(instance: str, hub_port: int, *more_ports: int) -> bool:
    """Whether every rule ``install`` puts in place is there now (the spawner asks before each
    start, so that a reboot or a ``tre firewall remove`` never leaves workspaces unguarded)."""
    binary = _binary("iptables")
    wanted = [(chain_name(instance), rule) for rule in rules(instance, hub_port, *more_ports)]
    wanted += [(hub_chain_name(instance), rule) for rule in hub_rules(instance)]
    wanted += [("INPUT", hook) for hook in _hooks(instance, hub_port, *more_ports)]
    return all(_iptables(binary, "-C", chain, *rule, check=False) for chain, rule in wanted)


def guard(hub_port: int, *more_ports: int):
    """What ProjectSpawner.firewall_in_place asks before each start: ``guard(...)(instance)`` is
    ``is_installed(instance, hub_port, *more_ports)`` (set in jupyterhub_config.py)."""
    return partial(_guarded, hub_port=hub_port, more_ports=more_ports)


def _guarded(instance: str, *, hub_port: int, more_ports: tuple[int, ...]) -> bool:
    return is_installed(instance, hub_port, *more_ports)


def installed_rules(instance: str) -> list[str]:
    """The chain as iptables lists it (``-S``), for people and tests to read."""
    result = subprocess.run([_binary("iptables"), "-w", "-S", chain_name(instance)], capture_output=True, text=True)
    return result.stdout.splitlines() if result.returncode == 0 else []


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not found:
        raise RuntimeError(f"{name} is not installed; install Debian's iptables package (./setup.sh does).")
    return found
