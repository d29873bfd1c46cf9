"""`tre packages` inside a workspace: ask the TRE's package index for a package, see your requests.

The workspace reaches the index service only (TRE_PACKAGE_INDEX_URL, on the project network's
gateway); it authenticates with this workspace's JupyterHub token, so the request is recorded for
this project and this person. Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request


def _call(method: str, path: str, body: dict | None = None) -> dict:
    base, token = os.environ.get("TRE_PACKAGE_INDEX_URL"), os.environ.get("JUPYTERHUB_API_TOKEN")
    if not base or not token:
        sys.exit("This workspace has no package index configured; ask the platform's administrators.")
    request = urllib.request.Request(f"{base}{path}", method=method, headers={
        "Authorization": f"token {token}", "Content-Type": "application/json"},
        data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        sys.exit(error.read().decode("utf-8", "replace").strip() or f"The package index answered {error.code}.")
    except (urllib.error.URLError, OSError) as error:
        sys.exit(f"The package index cannot be reached ({getattr(error, 'reason', error)}); try again in a "
                 "minute, or ask the platform's administrators.")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="tre packages", description="Packages from the TRE's index.")
    commands = parser.add_subparsers(dest="command", required=True)
    ask = commands.add_parser("request", help="Ask an admin to approve a package for this project.")
    ask.add_argument("name", help="The package's name, as on PyPI.")
    ask.add_argument("--version", default="", help="A version (0.30.0) or a range (>=0.29,<0.31); default: any.")
    ask.add_argument("--reason", required=True, help="Why the project needs it; the admin reads it.")
    commands.add_parser("status", help="This project's requests and what became of them.")
    arguments = parser.parse_args(argv)
    if arguments.command == "request":
        made = _call("POST", "/api/requests", {"name": arguments.name, "version": arguments.version,
                                               "reason": arguments.reason})
        print(f"Request #{made['id']} for {made['name']}{made['specifier']} is waiting for an admin; "
              "`tre packages status` shows what becomes of it.")
        return
    listed = _call("GET", "/api/requests")
    for row in listed["requests"] or []:
        print(f"#{row['id']}  {row['name']}{row['specifier']}  {row['state']}  {row['outcome'] or ''}".rstrip())
    if not listed["requests"]:
        print(f"Project {listed['project']} has no package requests.")


if __name__ == "__main__":
    main(sys.argv[1:])
