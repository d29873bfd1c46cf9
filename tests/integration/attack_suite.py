"""The attack suite: what a researcher's code could try from inside a project workspace to reach
data, people or machines it must not. Every attempt is bounded (1-2 s timeouts, capped loops) and
non-destructive (nothing of a dataset is changed even where a wall is missing).

Standard library only. The integration test runs it inside the workspace, as the researcher::

    container.exec_run(["python3", "-c", source, json.dumps(arguments)], user="1000:100")

and it prints ONE JSON document: a list of ``{"attack": id, "blocked": bool, "evidence": text,
"t0": start, "t1": end}`` (epoch seconds, the host's clock). Entries whose id starts with
``control-`` are the opposite: legitimate paths that must work (``"expect": "allowed"``), so that
a blocked attack means a wall, not a broken network, a dead token or a bug of this suite. An
attempt that fails for a reason the suite did not foresee carries ``"error": true``.

The arguments (JSON) are described in ``DEFAULTS``; the hub's API URL and the server's own token
come from the workspace's environment (JUPYTERHUB_API_URL, JUPYTERHUB_API_TOKEN).

``{"mode": "probe", ...}`` runs only the network probes (DNS query, HTTP GET) against given
addresses and prints their raw outcomes: the test runs it where the canaries ARE reachable, to
prove the probes themselves work.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import random
import re
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

DEFAULTS = {
    "user": "",                      # the workspace's owner
    "other_user": "",                # another user (with a running server of another project)
    "granted_datasets": [],          # slugs that should be under /data, nothing else
    "all_datasets": [],              # every slug of the catalogue
    "other_project": "",             # slug of a project the owner is not a member of
    "other_project_markers": [],     # paths of a marker file in that project's folder (in its workspace, on the host)
    "project_subnet": "",            # the project's network, "a.b.c.d/n"
    "gateway": "",                   # the project network's gateway (the host's side)
    "proxy_api_port": 0,             # configurable-http-proxy's API port on the host
    "host_canary_port": 0,           # a TCP listener the test runs on the gateway address
    "host_ports": [],                # [{"name": ..., "port": ...}] other host ports to try
    "host_other_address": "",        # "ip:port" of a TCP listener on a host address outside the project subnet
    "canary_http": "",               # "ip:port" of the HTTP canary (another network)
    "canary_dns": "",                # "ip:port" of the DNS canary (another network)
    "host_dns": "",                  # "ip:port" of a DNS canary on the gateway (port 53), if any
    "canary_name": "",               # the one name only the DNS canaries answer
    "other_server_address": "",      # "ip:port" of the other project's running server
    "index_port": 0,                 # the package index's port on the gateway
    "other_project_package": "",     # a package the other project asked the index for
    "pids_limit": 512,
    "cpu_limit": 1.0,                # the workspace's CPU limit (TRE_CPU_LIMIT)
    "memory_block_below": int(2.5 * 2**30),  # the hog must die before this much
    "memory_cap": 4 * 2**30,         # the hog stops by itself here
    "fork_cap": 2000,                # the fork bomb stops by itself here
    "fork_hold_seconds": 3,          # and holds its processes this long once fork fails
    "extract_key_fingerprints": [],  # [[size, sha256 hex]] of each project's extract key (host: secrets/extracts)
    "extract_key_paths": [],         # where those keys are on the host
    "planted_key_fingerprint": [],   # [size, sha256] of a key-like file the test planted in /project (control)
    "project": "",                   # the workspace's project: /data holds its extracts only
    "skip": [],                      # attack ids not to run (for quick manual runs)
}

TCP_TIMEOUT = 1.5
HTTP_TIMEOUT = 3.0
DNS_TIMEOUT = 2.0


# --- small tools ----------------------------------------------------------------------------------

def errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc.errno)) if isinstance(exc, OSError) else type(exc).__name__


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def tcp_probe(host: str, port: int, timeout: float = TCP_TIMEOUT, send: bytes | None = None) -> dict:
    """Outcome of a TCP connect: connected (with the first bytes of any reply), refused (the
    packet reached a TCP stack that answered), timeout (dropped) or unreachable (no route, or an
    ICMP error)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    started = time.monotonic()
    try:
        sock.connect((host, port))
    except socket.timeout:
        return {"outcome": "timeout", "seconds": round(time.monotonic() - started, 2)}
    except ConnectionRefusedError:
        return {"outcome": "refused"}
    except OSError as exc:
        return {"outcome": "unreachable", "errno": errno_name(exc)}
    else:
        reply = b""
        try:
            if send:
                sock.sendall(send)
            deadline = time.monotonic() + timeout
            while len(reply) < 2000 and time.monotonic() < deadline:
                sock.settimeout(max(0.05, deadline - time.monotonic()))
                chunk = sock.recv(2000)
                if not chunk:
                    break
                reply += chunk
        except OSError:
            pass
        head, _, body = reply.decode("latin-1").partition("\r\n\r\n")
        result = {"outcome": "connected", "reply": head.splitlines()[0][:80] if head else ""}
        if body:
            result["body"] = body[:80]
        return result
    finally:
        sock.close()


def describe(probe: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in probe.items())


def http(method: str, url: str, token: str | None = None, body: dict | None = None,
         timeout: float = HTTP_TIMEOUT) -> tuple[int, str]:
    """(status, body) of an HTTP request; (0, reason) if nothing answered. No proxies."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    data = json.dumps(body).encode() if body is not None else (b"" if method in ("POST", "PUT") else None)
    request = urllib.request.Request(url, data=data, method=method)
    if token:
        request.add_header("Authorization", f"token {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with opener.open(request, timeout=timeout) as reply:
            return reply.status, reply.read(4000).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(4000).decode("utf-8", "replace")
    except (OSError, urllib.error.URLError) as exc:
        return 0, f"no answer: {exc}"


def dns_query(server: str, port: int, name: str, timeout: float = DNS_TIMEOUT) -> dict:
    """Ask one DNS server for ``name`` A, by hand (UDP); the reply's rcode and addresses."""
    ident = random.randrange(1 << 16)
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".")) + b"\0"
    packet = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", 1, 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(timeout)
    try:
        sock.sendto(packet, (server, port))
        deadline = time.monotonic() + timeout
        while True:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            reply, source = sock.recvfrom(4096)
            if len(reply) >= 12 and struct.unpack("!H", reply[:2])[0] == ident:
                break
            if time.monotonic() >= deadline:
                raise socket.timeout()
    except socket.timeout:
        return {"outcome": "timeout"}
    except OSError as exc:
        return {"outcome": "unreachable", "errno": errno_name(exc)}
    finally:
        sock.close()
    _, flags, qdcount, ancount = struct.unpack("!HHHH", reply[:8])
    offset = 12 + len(question) + 4 if qdcount else 12
    addresses = []
    for _ in range(min(ancount, 20)):
        offset = _skip_name(reply, offset)
        if offset + 10 > len(reply):
            break
        rtype, _rclass, _ttl, rdlength = struct.unpack("!HHIH", reply[offset:offset + 10])
        offset += 10
        if rtype == 1 and rdlength == 4:
            addresses.append(socket.inet_ntoa(reply[offset:offset + 4]))
        offset += rdlength
    return {"outcome": "answer", "from": source[0], "rcode": flags & 0xF, "addresses": addresses}


def _skip_name(packet: bytes, offset: int) -> int:
    while offset < len(packet):
        length = packet[offset]
        if length & 0xC0 == 0xC0:
            return offset + 2
        offset += 1 + length
        if length == 0:
            return offset
    return offset


def in_thread(function, timeout: float):
    """Run ``function`` in a daemon thread, waiting at most ``timeout``: ('done', value),
    ('raised', exception) or ('timeout', None)."""
    box: dict = {}

    def run():
        try:
            box["value"] = function()
        except BaseException as exc:  # noqa: BLE001 - reported, never raised
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return "timeout", None
    return ("raised", box["error"]) if "error" in box else ("done", box["value"])


def proc_status(pid: int | str = "self") -> dict[str, str]:
    with open(f"/proc/{pid}/status") as status:
        return dict(line.rstrip("\n").split(":\t", 1) for line in status if ":\t" in line)


def mountinfo() -> list[dict]:
    mounts = []
    with open("/proc/self/mountinfo") as lines:
        for line in lines:
            fields = line.split()
            dash = fields.index("-")
            mounts.append({"root": fields[3], "target": fields[4], "options": fields[5],
                           "fstype": fields[dash + 1], "source": fields[dash + 2]})
    return mounts


_libc = None


def libc():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.ptrace.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        _libc.ptrace.restype = ctypes.c_long
        _libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
        _libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        _libc.unshare.argtypes = [ctypes.c_int]
    return _libc


def in_child(function) -> tuple[str, int]:
    """Run ``function`` (returns 0 or an errno) in a forked child, so whatever it changes (a
    namespace, a tracee) dies with the child. ('exit', code) or ('signal', number)."""
    pid = os.fork()
    if pid == 0:
        code = 255
        try:
            code = int(function())
        finally:
            os._exit(code)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    else:
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return "signal", os.WTERMSIG(status)
    return "exit", os.WEXITSTATUS(status)


def errno_of(code: int) -> str:
    return "success" if code == 0 else errno.errorcode.get(code, str(code))


# --- the attacks ----------------------------------------------------------------------------------
# Each returns (blocked, evidence); an exception becomes {"blocked": false, "error": true}.

def control_hub_api_own_token(a):
    """The server's own token works on the hub API (so the refusals below are about scopes)."""
    status, body = http("GET", f"{a['api_url']}/user", a["token"])
    name = ""
    try:
        name = json.loads(body).get("name", "")
    except ValueError:
        pass
    ok = status == 200 and name == a["user"]
    return (not ok), f"GET /user -> {status} name={name!r}"


def control_gateway_hub_port(a):
    """The hub's API port on the gateway is reachable: the network works, a timeout elsewhere is a drop."""
    probe = tcp_probe(a["gateway"], a["api_port"], send=b"GET /hub/health HTTP/1.0\r\n\r\n")
    return probe["outcome"] != "connected", f"{a['gateway']}:{a['api_port']} {describe(probe)}"


def first_data_file(a) -> tuple[str, str]:
    dataset = a["granted_datasets"][0]
    folder = f"/data/{dataset}"
    files = sorted((e.name.startswith("."), e.name) for e in os.scandir(folder) if e.is_file())  # data first
    files = [name for _, name in files]
    if not files:
        raise RuntimeError(f"{folder} holds no file to attack")
    return folder, os.path.join(folder, files[0])


def write_errno_blocks(exc: OSError) -> bool:
    return exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)


def data_write_new_file(a):
    folder, _ = first_data_file(a)
    results, blocked = [], True
    for target in (f"{folder}/tre-attack-{os.getpid()}.csv", f"/data/tre-attack-{os.getpid()}"):
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            results.append(f"{target}: {errno_name(exc)}")
            blocked &= write_errno_blocks(exc)
        else:
            os.close(fd)
            os.unlink(target)  # it was created: the wall is missing; leave nothing behind
            results.append(f"{target}: CREATED (removed again)")
            blocked = False
    return blocked, "; ".join(results)


def data_overwrite_file(a):
    _, path = first_data_file(a)
    try:
        fd = os.open(path, os.O_WRONLY)  # no O_TRUNC: opening for writing proves it, nothing changes
    except OSError as exc:
        return write_errno_blocks(exc), f"open({path}, O_WRONLY): {errno_name(exc)}"
    os.close(fd)
    return False, f"open({path}, O_WRONLY) SUCCEEDED (closed without writing)"


def data_delete_file(a):
    folder, path = first_data_file(a)
    results, blocked = [], True
    # unlink and rename check the mount's write access before looking the name up: on a read-only
    # mount both fail with EROFS even for a name that does not exist, so nothing real is risked.
    absent = f"{folder}/.tre-attack-absent-{os.getpid()}"
    try:
        os.unlink(absent)
    except OSError as exc:
        results.append(f"unlink(absent name): {errno_name(exc)}")
        if not write_errno_blocks(exc):
            blocked = False  # ENOENT: the mount is writable, a real file would have gone
    try:
        os.rename(path, path)
    except OSError as exc:
        results.append(f"rename({path}): {errno_name(exc)}")
        blocked &= write_errno_blocks(exc)
    else:
        results.append(f"rename({path}) onto itself SUCCEEDED")
        blocked = False
    ro = [m["options"] for m in mountinfo() if m["target"] == folder]
    results.append(f"mount options of {folder}: {ro}")
    return blocked, "; ".join(results)


def data_ungranted_dataset_visible(a):
    listed = sorted(os.listdir("/data")) if os.path.isdir("/data") else []
    granted = sorted(a["granted_datasets"])
    ungranted = [d for d in a["all_datasets"] if d not in granted]
    present = [d for d in ungranted if os.path.exists(f"/data/{d}")]
    mounted = [m["target"] for m in mountinfo()
               if any(m["root"].rstrip("/").endswith("/" + d) or f"/{d}@" in m["root"] or m["target"].endswith("/" + d)
                      for d in ungranted)]
    extra = [entry for entry in listed if entry not in granted]
    blocked = not extra and not present and not mounted and listed == granted
    return blocked, f"/data lists {listed} (granted {granted}); ungranted present={present} mounted={mounted}"


def data_is_the_projects_extracts(a):
    """Every /data mount is one of this project's extracts (<extracts root>/<project>/<dataset>@<version>),
    never a dataset's own folder nor another project's extract."""
    mounts = [m for m in mountinfo() if m["target"].startswith("/data/")]
    wrong = [f"{m['target']} <- {m['root']}" for m in mounts
             if f"/extracts/{a['project']}/{m['target'].rsplit('/', 1)[-1]}@" not in m["root"]]
    blocked = bool(mounts) and not wrong
    return blocked, (f"{len(mounts)} /data mounts: " + "; ".join(f"{m['target']} <- {m['root']}" for m in mounts)
                     + (f"; NOT the project's extracts: {wrong}" if wrong else ""))


KEY_WALK_ROOTS = ("/data", "/project", "/home", "/tmp", "/var/tmp", "/etc", "/root", "/run", "/srv", "/mnt",
                  "/media", "/opt/tre", "/usr/local")


def files_with_fingerprints(wanted: list, budget: int = 200_000) -> tuple[list[str], int]:
    """Files anywhere a workspace may read (the usual folders and every mount but the system ones)
    whose size and sha256 are one of ``wanted`` ([[size, sha256 hex]])."""
    import hashlib

    sizes = {int(size): set() for size, _ in wanted}
    for size, digest in wanted:
        sizes[int(size)].add(digest)
    roots = set(KEY_WALK_ROOTS) | {m["target"] for m in mountinfo()
                                   if m["target"] != "/" and not m["target"].startswith(("/proc", "/sys", "/dev"))}
    found, walked = [], 0
    for root in sorted(roots):
        for folder, dirs, files in os.walk(root, onerror=lambda e: None):
            walked += len(dirs) + len(files)
            for name in files:
                path = os.path.join(folder, name)
                try:
                    info = os.stat(path, follow_symlinks=False)
                    if not stat.S_ISREG(info.st_mode) or info.st_size not in sizes:
                        continue
                    with open(path, "rb") as stream:
                        if hashlib.sha256(stream.read()).hexdigest() in sizes[info.st_size]:
                            found.append(path)
                except OSError:
                    continue
            if walked > budget:
                return sorted(set(found)), walked
    return sorted(set(found)), walked


def control_key_walk_finds_a_planted_copy(a):
    """The walk below finds a key-like file by its fingerprint where one is: the one the test
    planted in this project's folder."""
    found, walked = files_with_fingerprints([a["planted_key_fingerprint"]])
    return not found, f"planted copy found at {found or 'nowhere'} ({walked} entries walked)"


def extract_key_readable(a):
    """No project's extract key (the secret behind its pseudonyms) is in reach: no file holding one,
    no mount of the secrets folder, and the host paths open nothing."""
    found, walked = files_with_fingerprints(a["extract_key_fingerprints"])
    mounted = [f"{m['target']} <- {m['root']}" for m in mountinfo() if "/secrets" in m["root"]]
    opened = []
    for path in a["extract_key_paths"] + [os.path.dirname(p) for p in a["extract_key_paths"][:1]]:
        try:
            if os.path.isdir(path):
                opened.append(f"{path}: lists {os.listdir(path)}")
            else:
                with open(path, "rb") as stream:
                    opened.append(f"{path}: read {len(stream.read())} bytes")
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EACCES, errno.EPERM):
                opened.append(f"{path}: {exc}")
    blocked = not found and not mounted and not opened and bool(a["extract_key_fingerprints"])
    return blocked, (f"{len(a['extract_key_fingerprints'])} keys looked for: files holding one: {found or 'none'} "
                     f"({walked} entries walked); secrets mounts: {mounted or 'none'}; host paths: {opened or 'nothing opens'}")


def other_project_files_visible(a):
    markers = a["other_project_markers"]
    names = {os.path.basename(p) for p in markers}
    found = [p for p in markers if os.path.exists(p)]
    walked, budget = 0, 50_000
    for root in ("/project", "/home", "/data", "/tmp", "/var/tmp", "/mnt", "/srv", "/media", "/run"):
        for folder, dirs, files in os.walk(root, onerror=lambda e: None):
            walked += len(dirs) + len(files)
            found += [os.path.join(folder, f) for f in files if f in names]
            if walked > budget:
                break
    other = a["other_project"]
    mounted = [f"{m['target']} <- {m['root']}" for m in mountinfo() if f"/{other}/" in m["root"] + "/"]
    found = sorted(set(found))
    blocked = not found and not mounted
    return blocked, f"marker {sorted(names)} found at {found or 'nowhere'} ({walked} entries walked); mounts of {other}: {mounted or 'none'}"


def route_out(a):
    network, bits = a["project_subnet"].split("/")
    subnet = struct.unpack("!I", socket.inet_aton(network))[0]
    subnet_mask = (0xFFFFFFFF << (32 - int(bits))) & 0xFFFFFFFF
    problems, routes = [], []
    with open("/proc/net/route") as table:
        next(table)
        for line in table:
            fields = line.split()
            iface, flags = fields[0], int(fields[3], 16)
            # /proc/net/route holds the addresses as little-endian hex
            dest, gw, mask = (bytes.fromhex(fields[i])[::-1] for i in (1, 2, 7))
            dest_s, gw_s, mask_s = (socket.inet_ntoa(x) for x in (dest, gw, mask))
            routes.append(f"{iface} {dest_s}/{mask_s} via {gw_s}")
            d, m = (struct.unpack("!I", x)[0] for x in (dest, mask))
            if d == 0 and m == 0:
                problems.append(f"default route via {gw_s}")
            elif (d & subnet_mask) != subnet or m < subnet_mask:
                problems.append(f"route beyond {a['project_subnet']}: {dest_s}/{mask_s}")
            if gw != bytes(4) or flags & 0x2:  # RTF_GATEWAY
                problems.append(f"route through a gateway {gw_s}")
    v6 = []
    if os.path.exists("/proc/net/ipv6_route"):
        with open("/proc/net/ipv6_route") as table:
            for line in table:
                fields = line.split()
                if fields[0] == "0" * 32 and fields[1] == "00" and fields[9] != "lo":
                    v6.append(f"IPv6 default route on {fields[9]}")
    problems += v6
    return not problems, f"routes: {routes}; problems: {problems or 'none'}"


def dns_via_resolver(a):
    name = a["canary_name"]
    kind, value = in_thread(lambda: socket.getaddrinfo(name, 80, socket.AF_INET, socket.SOCK_STREAM), 8)
    if kind == "done":
        resolved = sorted({info[4][0] for info in value})
        getaddrinfo = f"getaddrinfo RESOLVED {resolved}"
    elif kind == "raised":
        resolved, getaddrinfo = [], f"getaddrinfo failed: {value}"
    else:
        resolved, getaddrinfo = [], "getaddrinfo gave no answer in 8 s"
    raw, answered = [], False
    with open("/etc/resolv.conf") as conf:
        servers = [line.split()[1] for line in conf if line.startswith("nameserver")][:3]
    # ask by hand only resolvers on this machine (Docker's embedded one is 127.0.0.11), never outside
    servers = [s for s in servers if s.startswith("127.") or s == a["gateway"]]
    for server in servers:
        reply = dns_query(server, 53, name, timeout=DNS_TIMEOUT + 2)
        raw.append(f"{server}: {describe(reply)}")
        answered |= bool(reply.get("addresses"))
    return not resolved and not answered, f"{getaddrinfo}; direct to the resolv.conf servers: {raw}"


def dns_direct(address: str, name: str):
    if not address:  # nothing tried proves nothing: the run must give an address or skip the attack
        return False, "no address given: nothing was tried"
    host, port = split_address(address)
    reply = dns_query(host, port, name)
    # any reply at all (even NXDOMAIN) means the query reached a DNS server out there
    return reply["outcome"] != "answer", f"{address}: {describe(reply)}"


def dns_direct_canary_server(a):
    return dns_direct(a["canary_dns"], a["canary_name"])


def dns_direct_host_gateway(a):
    return dns_direct(a["host_dns"], a["canary_name"])


def reached(probe: dict) -> bool:
    """A connect or a refusal: either way a packet got there and something answered."""
    return probe["outcome"] in ("connected", "refused")


def canary_http_reachable(a):
    host, port = split_address(a["canary_http"])
    probe = tcp_probe(host, port, send=f"GET /from-workspace HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
    return not reached(probe), f"{a['canary_http']}: {describe(probe)}"


def other_project_server_reachable(a):
    host, port = split_address(a["other_server_address"])
    probe = tcp_probe(host, port, send=b"GET /api/status HTTP/1.0\r\n\r\n")
    return not reached(probe), f"{a['other_server_address']}: {describe(probe)}"


def host_canary_listener_reachable(a):
    probe = tcp_probe(a["gateway"], a["host_canary_port"])
    return not reached(probe), f"{a['gateway']}:{a['host_canary_port']} (a listener the test runs there): {describe(probe)}"


def host_via_default_route(a):
    """The default route leads to the host: a host address on another network (the canary
    network's gateway, where the test listens) must be dropped like the gateway's own."""
    host, port = split_address(a["host_other_address"])
    probe = tcp_probe(host, port)
    return not reached(probe), f"{a['host_other_address']} (host address beyond the project subnet): {describe(probe)}"


def host_proxy_api_reachable(a):
    probe = tcp_probe(a["gateway"], a["proxy_api_port"], send=b"GET /api/routes HTTP/1.0\r\n\r\n")
    return not reached(probe), f"{a['gateway']}:{a['proxy_api_port']}: {describe(probe)}"


def host_other_ports_reachable(a):
    """The host answers nothing on the gateway but the hub's API and the package index: a refusal
    is an answer too."""
    ports = a["host_ports"]
    results: dict[str, dict] = {}
    threads = []
    for entry in ports[:20]:
        def probe(entry=entry):
            results[f"{entry['name']}:{entry['port']}"] = tcp_probe(a["gateway"], int(entry["port"]))
        threads.append(threading.Thread(target=probe, daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TCP_TIMEOUT + 2)
    answered = [k for k, v in results.items() if reached(v)]
    summary = ", ".join(f"{k} {v['outcome']}" for k, v in sorted(results.items()))
    return not answered and len(results) == len(ports[:20]), f"{a['gateway']}: {summary}"


def index_raw(a, request: str) -> dict:
    """Send ``request`` (CRLF lines, the workspace's token added) to the package index as is."""
    head = request.replace("{token}", a["token"]).encode()
    return tcp_probe(a["gateway"], a["index_port"], send=head, timeout=HTTP_TIMEOUT)


def index_status(probe: dict) -> str:
    return probe.get("reply", "").split(" ")[1] if probe.get("reply", "").count(" ") else ""


def control_package_index_answers(a):
    """The package index on the gateway answers this workspace (so its refusals below are walls)."""
    status, body = http("GET", f"http://{a['gateway']}:{a['index_port']}/api/requests", a["token"])
    own = os.environ.get("TRE_PROJECT", "")
    ok = status == 200 and json.loads(body).get("project") == own
    return (not ok), f"GET /api/requests -> {status} {body[:120]!r}"


def package_index_connect(a):
    """CONNECT through the index to the canary: no tunnel (anything but 200)."""
    probe = index_raw(a, f"CONNECT {a['canary_http']} HTTP/1.1\r\nHost: {a['canary_http']}\r\n"
                         "Authorization: token {token}\r\n\r\n")
    return probe["outcome"] == "connected" and index_status(probe) not in ("200", ""), describe(probe)


def package_index_absolute_url(a):
    """An absolute URL (a forward proxy's request) to the canary: answered by the index itself, not fetched."""
    probe = index_raw(a, f"GET http://{a['canary_http']}/probe HTTP/1.1\r\nHost: {a['canary_http']}\r\n"
                         "Authorization: token {token}\r\nConnection: close\r\n\r\n")
    return probe["outcome"] == "connected" and index_status(probe) == "404", describe(probe)


def package_index_fallback(a):
    """A package not approved: a 404, never pypiserver's redirect to PyPI (a way out for pip)."""
    status, body = http("GET", f"http://{a['gateway']}:{a['index_port']}/simple/requests/", a["token"])
    return status == 404 and "tre packages request" in body, f"GET /simple/requests/ -> {status} {body[:160]!r}"


def package_index_upload(a):
    """pypiserver's upload (POST /): refused, so no workspace puts files where others install from."""
    status, body = http("POST", f"http://{a['gateway']}:{a['index_port']}/", a["token"], {":action": "file_upload"})
    return status not in (0, 200), f"POST / -> {status} {body[:120]!r}"


def package_index_without_token(a):
    """Without a workspace's token the index serves nothing (a container that is not a workspace)."""
    status, body = http("GET", f"http://{a['gateway']}:{a['index_port']}/simple/")
    return status == 401, f"GET /simple/ without a token -> {status} {body[:120]!r}"


def package_index_other_projects_requests(a):
    """The index's request list shows this project's requests only, whatever the query asks."""
    answers = []
    for query in ("", f"?project={a['other_project']}"):
        status, body = http("GET", f"http://{a['gateway']}:{a['index_port']}/api/requests{query}", a["token"])
        answers.append((status, body))
    leaked = [b for _, b in answers if a["other_project_package"] in b or f'"{a["other_project"]}"' in b]
    return all(s == 200 for s, _ in answers) and not leaked, f"{[(s, b[:120]) for s, b in answers]}"


SCOPE_REFUSALS = ("not authorized with current scopes", "Missing or invalid credentials",
                  "No access to resources or resources not found",
                  "no permissions to generate tokens")  # POST /users/:name/tokens checks the tokens scope itself


def api_refused(status: int, body: str) -> bool:
    """Refused by the token's scopes, not by something after them (a spawner's refusal)."""
    return status in (401, 403, 404) and any(text in body for text in SCOPE_REFUSALS)


def api_attack(a, method: str, path: str, body: dict | None = None):
    status, reply = http(method, f"{a['api_url']}{path}", a["token"], body)
    if status == 0:
        raise RuntimeError(f"{method} {path}: the hub API did not answer ({reply})")
    return api_refused(status, reply), f"{method} {path} -> {status} {reply[:200]!r}"


def hub_api_list_users(a):
    status, reply = http("GET", f"{a['api_url']}/users", a["token"])
    if status == 0:
        raise RuntimeError(f"GET /users: the hub API did not answer ({reply})")
    if status == 200:
        try:
            names = sorted(u.get("name", "?") for u in json.loads(reply))
        except (ValueError, AttributeError):
            names = ["(unparsable)"]
        others = [n for n in names if n != a["user"]]
        return not others, f"GET /users -> 200, users visible: {names}"
    return api_refused(status, reply), f"GET /users -> {status} {reply[:200]!r}"


def hub_api_read_other_user(a):
    return api_attack(a, "GET", f"/users/{a['other_user']}")


def hub_api_start_server(a):
    return api_attack(a, "POST", f"/users/{a['user']}/servers/tre-attack-{random.randrange(1 << 24):06x}")


def hub_api_stop_other_server(a):
    # a name the other user has no server under: allowed scopes would give "no such server"
    return api_attack(a, "DELETE", f"/users/{a['other_user']}/servers/tre-attack-absent")


def hub_api_list_own_tokens(a):
    return api_attack(a, "GET", f"/users/{a['user']}/tokens")


def hub_api_create_token(a):
    return api_attack(a, "POST", f"/users/{a['user']}/tokens", {"note": "tre attack suite", "expires_in": 60})


def hub_api_read_proxy_routes(a):
    return api_attack(a, "GET", "/proxy")


def setuid_binaries(a):
    found = []
    for folder in ("/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin", "/usr/local/sbin"):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries[:5000]:
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError:
                continue
            if stat.S_ISREG(mode) and mode & (stat.S_ISUID | stat.S_ISGID):
                found.append(os.path.realpath(entry.path))
    no_new_privs = proc_status().get("NoNewPrivs", "?").strip()
    euids = {}
    for command in (["su", "root"], ["passwd"]):
        euids[command[0]] = _euid_after_exec(command)
    try:
        su = subprocess.run(["su", "-c", "id", "root"], stdin=subprocess.DEVNULL, capture_output=True,
                            timeout=5, text=True)
        su_out = (su.stdout + su.stderr).strip().replace("\n", " ")[:120]
    except (OSError, subprocess.TimeoutExpired) as exc:
        su_out = f"({exc})"
    root = [k for k, v in euids.items() if v == 0] or (["su -c id"] if "uid=0" in su_out else [])
    blocked = no_new_privs == "1" and not root
    return blocked, (f"{len(sorted(set(found)))} setuid/setgid files ({', '.join(sorted(set(found))[:12])}); "
                     f"NoNewPrivs={no_new_privs}; effective uid after exec: {euids}; `su -c id root`: {su_out!r}")


def _euid_after_exec(command: list[str]):
    """The effective uid a setuid program gets once exec'd (read from /proc while it waits for a
    password on a pipe we keep open); None if it could not be observed."""
    try:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
    except OSError as exc:
        return f"not run: {errno_name(exc)}"
    euid = None
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            try:
                status = proc_status(process.pid)
            except OSError:
                break
            if status.get("Name", "").strip() == os.path.basename(command[0])[:15]:
                euid = int(status["Uid"].split()[1])
                if status.get("State", "").startswith("S"):
                    break  # waiting (for the password): settled
            time.sleep(0.01)
    finally:
        process.kill()
        process.wait(timeout=5)
    return euid


def capabilities(a):
    """Every set, the bounding set above all: effective, permitted and ambient are 0 for uid 1000
    whether or not capabilities were dropped; only the bounding set (what a setuid program or a
    file capability could still get) shows the engine's cap_drop."""
    status = proc_status()
    caps = {k: int(status.get(k, "0"), 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
    return not any(caps.values()), ", ".join(f"{k}={v:#x}" for k, v in caps.items())


def no_new_privileges_outside_wrapper(a):
    """NoNewPrivs of pid 1 (tini, started by the engine with the container's own settings): the
    suite itself runs under tre_seccomp, which sets the flag for its children whatever the engine did."""
    init, own = (proc_status(pid).get("NoNewPrivs", "?").strip() for pid in (1, "self"))
    return init == "1", f"pid 1 ({proc_status(1).get('Name', '?').strip()}): NoNewPrivs={init}; this process: {own}"


class IOVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


def _process_vm(name: str, pid: int, local, remote: int, length: int) -> tuple[int, int]:
    call = getattr(libc(), name)
    call.restype = ctypes.c_ssize_t
    call.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    local_iov, remote_iov = IOVec(ctypes.addressof(local), length), IOVec(remote, length)
    done = call(pid, ctypes.byref(local_iov), 1, ctypes.byref(remote_iov), 1, 0)
    return done, (0 if done >= 0 else ctypes.get_errno())


def process_vm(a):
    """process_vm_readv/writev against another process: a child of the suite's own (same uid,
    a descendant: only the seccomp filter stands in the way; the same bytes are written back) and
    the Jupyter server (read only). EPERM is the wall; any byte moved, or EFAULT/ESRCH (the
    permission check passed), is not."""
    secret = b"tre-attack-process-vm-secret"
    buffer = ctypes.create_string_buffer(secret, 64)
    child = os.fork()
    if child == 0:  # the forked copy keeps the buffer at the same address
        time.sleep(10)
        os._exit(0)
    results, blocked = [], True
    try:
        targets = [("own child", child, ("process_vm_readv", "process_vm_writev"))]
        server = jupyter_server_pid()
        if server:
            targets.append(("jupyterhub-singleuser", server, ("process_vm_readv",)))
        for label, pid, calls in targets:
            for name in calls:
                local = ctypes.create_string_buffer(secret if name.endswith("writev") else b"", 64)
                done, code = _process_vm(name, pid, local, ctypes.addressof(buffer), len(secret))
                moved = done >= 0
                results.append(f"{name} {label} (pid {pid}): " + (f"{done} bytes" + (f" {local.raw[:done]!r}"
                                                                                       if not name.endswith("writev") else "")
                                                                  if moved else errno_of(code)))
                blocked &= not moved and code == errno.EPERM
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    return blocked, "; ".join(results)


HOST_DEVICES = ("/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg", "/dev/sda", "/dev/vda", "/dev/xvda", "/dev/nvme0n1",
                "/dev/dm-0", "/dev/loop0", "/dev/md0", "/dev/sr0", "/dev/kvm", "/dev/fuse", "/dev/net/tun", "/dev/mapper/control",
                "/dev/hidraw0", "/dev/ttyS0", "/dev/watchdog", "/dev/nvidia0", "/dev/dri/card0")
CONTAINER_DEVICES = {"null", "zero", "full", "random", "urandom", "tty", "console", "ptmx", "pts", "shm", "mqueue",
                     "fd", "stdin", "stdout", "stderr", "core"}


def device_nodes(a):
    """No host device node in /dev (the engine's default set only), none of the usual ones opens,
    and no device node can be made (mknod needs CAP_MKNOD; /tmp is nodev)."""
    extra = sorted(set(os.listdir("/dev")) - CONTAINER_DEVICES)
    present, opened = [], []
    for path in HOST_DEVICES:
        if os.path.exists(path):
            present.append(path)
            try:
                os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
                opened.append(path)
            except OSError:
                pass
    node = os.path.join(tempfile.mkdtemp(prefix="tre-attack-dev-", dir="/tmp"), "disk")
    try:
        os.mknod(node, 0o600 | stat.S_IFBLK, os.makedev(8, 0))
        made = "mknod SUCCEEDED"
    except OSError as exc:
        made = f"mknod: {errno_name(exc)}"
    finally:
        if os.path.lexists(node):
            os.unlink(node)
        os.rmdir(os.path.dirname(node))
    blocked = not extra and not present and made != "mknod SUCCEEDED"
    return blocked, f"/dev beyond the engine's default set: {extra or 'none'}; host devices present: {present or 'none'}; " \
                    f"opened: {opened or 'none'}; {made}"


def cpu_limit(a):
    """The CPU limit read (cgroup v2 cpu.max, or v1 cfs quota) and tried: busy loops on one more
    process than the limit allows share at most the limit (with 20% for measuring)."""
    limit = float(a["cpu_limit"])
    text = cgroup_value("cpu", "cpu.max")
    if text == "?":
        quota, period = cgroup_value("cpu", "cpu.cfs_quota_us"), cgroup_value("cpu", "cpu.cfs_period_us")
        text = f"{'max' if quota in ('-1', '?') else quota} {period}"
    quota, _, period = text.partition(" ")
    configured = None if quota == "max" else int(quota) / int(period)
    workers, seconds, children = int(limit) + 1, 2.0, []
    started = time.monotonic()
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pass
            os._exit(0)
        children.append(pid)
    used = 0.0
    for pid in children:
        _, _, usage = os.wait4(pid, 0)
        used += usage.ru_utime + usage.ru_stime
    share = used / (time.monotonic() - started)
    blocked = configured is not None and abs(configured - limit) < 0.01 and share <= limit * 1.2 + 0.05
    return blocked, (f"cpu.max {text!r} (limit {configured if configured is not None else 'none'}, expected {limit}); "
                     f"{workers} busy loops for {seconds:.0f} s used {share:.2f} CPUs")


def mount_syscall(a):
    target = tempfile.mkdtemp(prefix="tre-attack-mount-", dir="/tmp")
    try:
        rc = libc().mount(b"tre-attack", target.encode(), b"tmpfs", 0, None)
        code = ctypes.get_errno()
        if rc == 0:
            libc().umount2(target.encode(), 2)  # MNT_DETACH
            return False, f"mount(tmpfs, {target}) SUCCEEDED (unmounted again)"
        try:
            binary = subprocess.run(["mount", "-t", "tmpfs", "none", target], capture_output=True,
                                    text=True, timeout=5, stdin=subprocess.DEVNULL)
            binary_out = f"exit {binary.returncode}: {(binary.stdout + binary.stderr).strip()[:100]}"
            if binary.returncode == 0:
                subprocess.run(["umount", target], capture_output=True, timeout=5)
                return False, f"mount(2): {errno_of(code)}; the mount binary SUCCEEDED: {binary_out}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            binary_out = str(exc)
        return code == errno.EPERM, f"mount(2) tmpfs on {target}: {errno_of(code)}; `mount -t tmpfs`: {binary_out!r}"
    finally:
        os.rmdir(target)


def unshare_user_namespace(a):
    clone_newuser = 0x10000000

    def attempt():
        return 0 if libc().unshare(clone_newuser) == 0 else ctypes.get_errno()

    how, code = in_child(attempt)
    if how == "signal":
        return True, f"unshare(CLONE_NEWUSER) killed the child by signal {code} (seccomp)"
    return code != 0, f"unshare(CLONE_NEWUSER): {errno_of(code)}"


def jupyter_server_pid() -> int | None:
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != 1:
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    program = cmdline.read().split(b"\0")[:2]  # the interpreter and its script
            except OSError:
                continue
            if any(arg.endswith(b"/jupyterhub-singleuser") for arg in program):
                return int(entry)
    return None


def ptrace_pid1(a):
    """PTRACE_SEIZE, not PTRACE_ATTACH: the same permission check (ptrace_attach ->
    __ptrace_may_access(PTRACE_MODE_ATTACH)), without stopping the target if it succeeds; the
    tracer is a child that exits at once, which detaches."""
    ptrace_seize = 0x4206
    targets = {"pid 1": 1}
    server = jupyter_server_pid()
    if server:
        targets["jupyterhub-singleuser"] = server
    results, blocked = [], True
    for label, pid in targets.items():
        try:
            owner = proc_status(pid)["Uid"].split()[1]
        except (OSError, KeyError):
            owner = "?"

        def attempt(pid=pid):
            return 0 if libc().ptrace(ptrace_seize, pid, None, None) == 0 else ctypes.get_errno()

        how, code = in_child(attempt)
        outcome = f"killed by signal {code}" if how == "signal" else errno_of(code)
        results.append(f"{label} (pid {pid}, euid {owner}): {outcome}")
        blocked &= not (how == "exit" and code == 0)
    return blocked, "PTRACE_SEIZE " + "; ".join(results)


def proc_mem_of_server(a):
    """Writing into /proc/<pid>/mem needs no ptrace call, only the same uid and a dumpable
    target: the Jupyter server, which enforces the workspace's locks, must not be patchable so."""
    pid = jupyter_server_pid()
    if pid is None:
        return False, "no Jupyter server process found to try"
    results, blocked = [], True
    for name, mode in (("mem", "r+b"), ("environ", "rb")):
        try:
            with open(f"/proc/{pid}/{name}", mode):
                pass
        except OSError as error:
            results.append(f"/proc/{pid}/{name}: {errno_of(error.errno)}")
        else:
            results.append(f"/proc/{pid}/{name} opened ({mode})")
            blocked = False
    return blocked, "; ".join(results)


def docker_socket(a):
    found = []
    for path in ("/var/run/docker.sock", "/run/docker.sock", "/var/run/containerd/containerd.sock",
                 "/run/containerd/containerd.sock", "/run/podman/podman.sock"):
        if os.path.lexists(path):
            found.append(path)
    env = [k for k in os.environ if k.startswith(("DOCKER_", "CONTAINERD_")) or k in ("KUBERNETES_SERVICE_HOST",)]
    mounted = [m["target"] for m in mountinfo()
               if any(re.search(r"\.sock$|docker\.sock|containerd\.sock", m[k]) for k in ("target", "root"))]
    blocked = not found and not env and not mounted
    return blocked, f"sockets: {found or 'none'}; engine env: {env or 'none'}; socket-like mounts: {mounted or 'none'}"


def secrets_in_env(a):
    own = a["token"]
    suspicious = sorted(k for k, v in os.environ.items()
                        if re.search(r"TOKEN|SECRET|PASSW|CREDENTIAL|PRIVATE|_KEY$", k, re.I) and v != own)
    files = [p for p in ("/srv/jupyterhub/jupyterhub_cookie_secret", "/run/secrets") if os.path.exists(p)]
    return not suspicious and not files, (f"secret-looking variables besides the server's own token: {suspicious or 'none'};"
                                          f" secret files: {files or 'none'}")


def cgroup_value(controller: str, name: str) -> str:
    for path in (f"/sys/fs/cgroup/{controller}/{name}", f"/sys/fs/cgroup/{name}"):
        try:
            with open(path) as value:
                return value.read().strip()
        except OSError:
            continue
    return "?"


def fork_bomb(a):
    cap, limit = int(a["fork_cap"]), int(a["pids_limit"])
    children: list[int] = []
    failure = None
    deadline = time.monotonic() + 30
    try:
        while len(children) < cap and time.monotonic() < deadline:
            try:
                pid = os.fork()
            except OSError as exc:
                failure = exc
                break
            if pid == 0:
                try:
                    time.sleep(30)  # killed long before; exits by itself if the suite dies
                finally:
                    os._exit(0)
            children.append(pid)
        at_peak = cgroup_value("pids", "pids.current")
        if failure is not None:
            time.sleep(float(a["fork_hold_seconds"]))  # stay at the limit while the test watches the hub
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except OSError:
                pass
    blocked = failure is not None and len(children) <= limit
    return blocked, (f"{len(children)} processes forked, then "
                     f"{('fork failed: ' + errno_name(failure)) if failure else 'stopped by the suite (cap or 30 s)'}"
                     f"{', held ' + str(a['fork_hold_seconds']) + ' s' if failure else ''}; "
                     f"pids.current at the peak {at_peak}, pids.max {cgroup_value('pids', 'pids.max')}")


MEMORY_HOG = r"""
import sys
chunks, step, cap = [], 64 << 20, int(sys.argv[1])
while len(chunks) * step < cap:
    chunks.append(b"\x01" * step)  # written, so resident: not a lazily mapped zero page
    print(len(chunks) * step, flush=True)
print("cap", flush=True)
"""


def memory_hog(a):
    import select

    cap, block_below = int(a["memory_cap"]), int(a["memory_block_below"])
    child = subprocess.Popen([sys.executable, "-c", MEMORY_HOG, str(cap)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    reached_bytes, capped, buffer = 0, False, b""
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([child.stdout], [], [], 1.0)
            if ready:
                chunk = os.read(child.stdout.fileno(), 4096)
                if not chunk:
                    break
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line == b"cap":
                        capped = True
                    elif line.isdigit():
                        reached_bytes = int(line)
            elif child.poll() is not None:
                break
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)
    stderr = child.stderr.read().decode("utf-8", "replace")
    child.stderr.close()
    child.stdout.close()
    died = child.returncode < 0 or "MemoryError" in stderr
    how = (f"killed by signal {-child.returncode}" if child.returncode < 0
           else f"exit {child.returncode}{' (MemoryError)' if 'MemoryError' in stderr else ''}")
    blocked = died and not capped and reached_bytes < block_below
    return blocked, (f"hog reached {reached_bytes / 2**30:.2f} GiB, then {how}"
                     f"{'; it reached the cap' if capped else ''}; memory.limit_in_bytes "
                     f"{cgroup_value('memory', 'memory.limit_in_bytes')}, max usage {cgroup_value('memory', 'memory.max_usage_in_bytes')}, "
                     f"oom_control: {cgroup_value('memory', 'memory.oom_control').replace(chr(10), ' ')}")


ATTACKS = [
    # (id, function, what it proves when blocked)
    ("control-hub-api-own-token", control_hub_api_own_token,
     "the server's own token works on the hub API (so the API refusals below are about scopes)"),
    ("control-gateway-hub-port", control_gateway_hub_port,
     "the hub's API port on the gateway answers (so a timeout elsewhere is a drop, not a dead network)"),
    ("data-write-new-file", data_write_new_file, "no new file can be written under /data"),
    ("data-overwrite-file", data_overwrite_file, "a dataset file cannot be opened for writing"),
    ("data-delete-file", data_delete_file, "nothing under /data can be deleted or renamed"),
    ("data-ungranted-dataset-visible", data_ungranted_dataset_visible,
     "/data holds exactly the granted datasets; an ungranted one is neither listed nor mounted"),
    ("data-is-the-projects-extracts", data_is_the_projects_extracts,
     "every /data mount is this project's own extract, never a dataset's folder or another project's extract"),
    ("control-key-walk-finds-a-planted-copy", control_key_walk_finds_a_planted_copy,
     "the key search finds a key-like file where the test planted one (so 'not found' means not there)"),
    ("extract-key-readable", extract_key_readable,
     "no project's extract key (the secret behind its pseudonyms) is readable or mounted in the workspace"),
    ("other-project-files-visible", other_project_files_visible,
     "another project's shared folder is nowhere in this workspace"),
    ("route-out", route_out, "no default route and no route beyond the project's subnet"),
    ("dns-via-resolver", dns_via_resolver,
     "the normal resolver (Docker's embedded DNS) resolves no outside name: DNS never leaves"),
    ("dns-direct-canary-server", dns_direct_canary_server,
     "a DNS server on another network cannot be asked directly"),
    ("dns-direct-host-gateway", dns_direct_host_gateway,
     "a DNS server on the host's gateway address (port 53) cannot be asked directly"),
    ("canary-http-reachable", canary_http_reachable, "a server on another Docker network is unreachable"),
    ("other-project-server-reachable", other_project_server_reachable,
     "another project's running Jupyter server is unreachable"),
    ("host-canary-listener-reachable", host_canary_listener_reachable,
     "a service listening on the host's gateway address is unreachable"),
    ("host-via-default-route", host_via_default_route,
     "a host listener on an address beyond the project subnet is unreachable, whatever the routes say"),
    ("host-proxy-api-reachable", host_proxy_api_reachable, "the proxy's API port on the host is unreachable"),
    ("host-other-ports-reachable", host_other_ports_reachable,
     "no other host port answers on the gateway (not even with a refusal)"),
    ("control-package-index-answers", control_package_index_answers,
     "the package index on the gateway answers this workspace's token, for its own project"),
    ("package-index-connect", package_index_connect, "the package index opens no tunnel (CONNECT)"),
    ("package-index-absolute-url", package_index_absolute_url,
     "the package index fetches no absolute URL: it is no forward proxy"),
    ("package-index-fallback", package_index_fallback,
     "a package that is not approved gets the index's 404 with how to ask, never a redirect to PyPI"),
    ("package-index-upload", package_index_upload, "no workspace can upload into the package index"),
    ("package-index-without-token", package_index_without_token, "without a workspace's token the index serves nothing"),
    ("package-index-other-projects-requests", package_index_other_projects_requests,
     "a workspace cannot read another project's package requests"),
    ("hub-api-list-users", hub_api_list_users, "the server's token cannot list the hub's users"),
    ("hub-api-read-other-user", hub_api_read_other_user, "the server's token cannot read another user"),
    ("hub-api-start-server", hub_api_start_server, "the server's token cannot start servers"),
    ("hub-api-stop-other-server", hub_api_stop_other_server,
     "the server's token cannot stop another user's servers"),
    ("hub-api-list-own-tokens", hub_api_list_own_tokens, "the server's token cannot list its owner's tokens"),
    ("hub-api-create-token", hub_api_create_token,
     "the server's token cannot mint a new (broader) token of its owner"),
    ("hub-api-read-proxy-routes", hub_api_read_proxy_routes, "the server's token cannot read the proxy's routes"),
    ("setuid-binaries", setuid_binaries,
     "setuid/setgid programs give no privilege (no-new-privileges): su stays uid 1000"),
    ("capabilities", capabilities, "the process has no capability, and none in its bounding set (CapBnd = 0)"),
    ("no-new-privileges-outside-wrapper", no_new_privileges_outside_wrapper,
     "no-new-privileges is the container's own setting: pid 1, outside the seccomp wrapper, has it"),
    ("process-vm", process_vm, "process_vm_readv/writev reach no other process, not even the suite's own child"),
    ("device-nodes", device_nodes, "no host device is in /dev or opens, and none can be made"),
    ("cpu-limit", cpu_limit, "the CPU limit is set (cpu.max) and busy loops get no more than it"),
    ("mount-syscall", mount_syscall, "mount(2) and the mount program are refused"),
    ("unshare-user-namespace", unshare_user_namespace,
     "no user namespace can be created (the usual first step of a kernel exploit)"),
    ("ptrace-pid1", ptrace_pid1, "the workspace's init (pid 1) and the Jupyter server cannot be traced"),
    ("proc-mem-of-server", proc_mem_of_server,
     "the Jupyter server's memory and environment cannot be opened through /proc"),
    ("docker-socket", docker_socket, "no container engine socket or address is in reach"),
    ("secrets-in-env", secrets_in_env, "no secret in the environment but the server's own token"),
    ("fork-bomb", fork_bomb, "a fork bomb stops at the pids limit"),
    ("memory-hog", memory_hog, "a memory hog is killed at the memory limit, before 2.5 GiB"),
]
ATTACK_IDS = [attack_id for attack_id, _, _ in ATTACKS]
DESCRIPTIONS = {attack_id: description for attack_id, _, description in ATTACKS}


def run_all(arguments: dict) -> list[dict]:
    a = {**DEFAULTS, **arguments}
    a["api_url"] = os.environ.get("JUPYTERHUB_API_URL", "").rstrip("/")
    a["token"] = os.environ.get("JUPYTERHUB_API_TOKEN", "")
    a["api_port"] = int(a["api_url"].split(":")[2].split("/")[0]) if a["api_url"].count(":") >= 2 else 0
    results = []
    for attack_id, function, _ in ATTACKS:
        if attack_id in a["skip"]:
            continue
        t0 = time.time()
        entry = {"attack": attack_id}
        try:
            blocked, evidence = function(a)
            entry.update(blocked=bool(blocked), evidence=evidence)
        except Exception as exc:  # noqa: BLE001 - a bug of the suite is reported, never hidden
            entry.update(blocked=False, error=True, evidence=f"suite error: {type(exc).__name__}: {exc}")
        if attack_id.startswith("control-"):
            entry["expect"] = "allowed"
        entry.update(t0=round(t0, 3), t1=round(time.time(), 3))
        results.append(entry)
    return results


def probe(arguments: dict) -> dict:
    """Raw outcomes of the network probes against canaries that ARE reachable from here."""
    out = {}
    if arguments.get("dns"):
        host, port = split_address(arguments["dns"])
        out["dns"] = dns_query(host, port, arguments["name"])
        out["dns_other_name"] = dns_query(host, port, "not-the-canary." + arguments["name"])
    if arguments.get("http"):
        host, port = split_address(arguments["http"])
        out["http"] = tcp_probe(host, port, send=f"GET /probe HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
    if arguments.get("resolve"):
        kind, value = in_thread(lambda: socket.getaddrinfo(arguments["resolve"], 80, socket.AF_INET), 8)
        out["resolve"] = sorted({i[4][0] for i in value}) if kind == "done" else f"{kind}: {value}"
    return out


def main(argv: list[str]) -> None:
    arguments = json.loads(argv[0]) if argv else {}
    if arguments.get("mode") == "probe":
        print(json.dumps(probe(arguments)))
    else:
        print(json.dumps(run_all(arguments)))


if __name__ == "__main__":
    main(sys.argv[1:])
