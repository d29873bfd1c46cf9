"""Canary servers for the attack suite: things a workspace must never reach.

Standard library only, so the same file runs in two places:

- inside a canary container (image ``tre/singleuser``, on a network the test creates), started as
  ``python3 -c <this file> http <port> <token>`` or ``python3 -c <this file> dns <port> <name> <ip>``;
  each request it receives is printed as one line (``HIT http <client> ...``), so the container's
  log says whether a workspace got through;
- in the test process on the host, as threads (``HostTcpCanary``, ``HostDnsCanary``) bound to a
  project network's gateway address, recording who connected.

The DNS canary answers one name only (an A record), NXDOMAIN for anything else: a name nobody
else in the world answers, so resolving it proves the query reached the canary.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CANARY_BODY_PREFIX = "tre-canary"


# --- DNS ------------------------------------------------------------------------------------------

def parse_question(packet: bytes) -> tuple[int, str, int, int] | None:
    """(id, name, qtype, end of the question) of a DNS query, or None if it is not one."""
    if len(packet) < 12:
        return None
    ident, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if flags & 0x8000 or qdcount < 1:
        return None
    labels, offset = [], 12
    while offset < len(packet):
        length = packet[offset]
        offset += 1
        if length == 0:
            break
        if length & 0xC0 or offset + length > len(packet):
            return None
        labels.append(packet[offset:offset + length].decode("ascii", "replace"))
        offset += length
    if offset + 4 > len(packet):
        return None
    qtype, _qclass = struct.unpack("!HH", packet[offset:offset + 4])
    return ident, ".".join(labels).lower(), qtype, offset + 4


def dns_reply(packet: bytes, name: str, address: str) -> bytes | None:
    """The canary's reply: ``name`` A ``address``; NXDOMAIN for other names; nothing to garbage."""
    question = parse_question(packet)
    if question is None:
        return None
    ident, qname, qtype, end = question
    known = qname == name.lower().rstrip(".")
    answers = b""
    if known and qtype in (1, 255):  # A or ANY
        answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(address)
    rcode = 0 if known else 3
    flags = 0x8000 | 0x0400 | (packet[2] & 0x01) << 8 | rcode  # response, authoritative, RD copied
    header = struct.pack("!HHHHHH", ident, flags, 1, 1 if answers else 0, 0, 0)
    return header + packet[12:end] + answers


def serve_dns(sock: socket.socket, name: str, address: str, on_query) -> None:
    """Answer queries on a bound UDP socket until it is closed."""
    while True:
        try:
            packet, client = sock.recvfrom(4096)
        except OSError:
            return
        question = parse_question(packet)
        on_query(client, question[1] if question else "(not a query)")
        reply = dns_reply(packet, name, address)
        if reply:
            try:
                sock.sendto(reply, client)
            except OSError:
                pass


# --- HTTP -----------------------------------------------------------------------------------------

def http_handler(token: str, on_request):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            on_request(self.client_address, self.path)
            body = f"{CANARY_BODY_PREFIX} {token}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


# --- host-side canaries (threads of the test process) ----------------------------------------------

class HostTcpCanary:
    """A TCP listener on a host address: every accepted connection is a hit."""

    def __init__(self, address: str, port: int = 0) -> None:
        self.hits: list[tuple[str, int]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(16)
        self.address, self.port = self.sock.getsockname()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, client = self.sock.accept()
            except OSError:
                return
            self.hits.append(client)
            try:
                connection.sendall(f"{CANARY_BODY_PREFIX} host-tcp\n".encode())
            except OSError:
                pass
            connection.close()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class HostDnsCanary:
    """The DNS canary on a host address (normally port 53 of a project network's gateway, where
    Docker's embedded resolver forwards the names it does not know)."""

    def __init__(self, address: str, name: str, answer: str, port: int = 53) -> None:
        self.hits: list[tuple[tuple[str, int], str]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, port))
        self.address, self.port = self.sock.getsockname()
        self.thread = threading.Thread(
            target=serve_dns, args=(self.sock, name, answer, lambda client, q: self.hits.append((client, q))),
            daemon=True)
        self.thread.start()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


# --- in a canary container ------------------------------------------------------------------------

def _log(*parts) -> None:
    print("HIT", *parts, flush=True)


def main(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    if kind == "http":
        server = ThreadingHTTPServer(("0.0.0.0", port), http_handler(argv[2], lambda c, p: _log("http", c[0], p)))
        print(f"READY http {port}", flush=True)
        server.serve_forever()
    elif kind == "dns":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("0.0.0.0", port))
        print(f"READY dns {port}", flush=True)
        serve_dns(sock, argv[2], argv[3], lambda c, q: _log("dns", c[0], q))
    else:
        raise SystemExit(f"unknown canary {kind}")


if __name__ == "__main__":
    main(sys.argv[1:])
