#!/usr/bin/env bash
# Sets up everything the TRE needs on a Debian 12 host, then starts the demo or runs the tests.
#
#   sudo ./setup.sh demo    # install what is missing, start the demo on http://127.0.0.1:8000
#   sudo ./setup.sh test    # install what is missing, run the whole test suite
#   sudo ./setup.sh stop    # stop the demo hub and its workspaces
#   sudo ./setup.sh reset   # stop, then delete the demo's data (.tre/demo) and Docker objects
#
# Every step checks first and reuses what exists, so a second run is fast.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$REPO"
ACTION="${1:-}"
VENV="$REPO/.venv"
DEMO_HOME="$REPO/.tre/demo"
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[[ "$ACTION" =~ ^(demo|test|stop|reset)$ ]] || usage

if [[ $EUID -ne 0 ]]; then
  exec sudo --preserve-env=TRE_EXTRA_CA_BUNDLE,TRE_CHROMIUM,HTTP_PROXY,HTTPS_PROXY,NO_PROXY "$0" "$@"
fi

STEP=0
step() { STEP=$((STEP + 1)); STEP_START=$SECONDS; printf '\n\033[1m==> [%s] %s\033[0m\n' "$STEP" "$*"; }
done_step() { printf '    done in %ss\n' "$((SECONDS - STEP_START))"; }
die() { printf '\033[31mError:\033[0m %s\n' "$*" >&2; exit 1; }

# --- Debian packages ------------------------------------------------------------------------------
APT_UPDATED=0
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg"); done
  [[ ${#missing[@]} -eq 0 ]] && { echo "    present: $*"; return; }
  echo "    installing: ${missing[*]}"
  if [[ $APT_UPDATED -eq 0 ]]; then apt-get update -q; APT_UPDATED=1; fi
  apt-get install -y -q --no-install-recommends "${missing[@]}"
}

system_packages() {
  step "Debian packages (Python venv, Docker engine, debootstrap, Node.js)"
  # e2fsprogs (mkfs.ext4, resize2fs) and util-linux (mount, losetup): the quota filesystems, spawner/storage.py
  apt_install python3-venv ca-certificates curl iptables iproute2 util-linux e2fsprogs debootstrap docker.io
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
  done_step
}

# --- Docker engine --------------------------------------------------------------------------------
docker_engine() {
  step "Docker engine"
  if docker info >/dev/null 2>&1; then
    echo "    a Docker engine answers: reusing it"
  elif [[ -d /run/systemd/system ]]; then
    systemctl enable --now docker
  else
    echo "    no systemd here: starting dockerd in the background (log: /var/log/tre-dockerd.log)"
    nohup dockerd >>/var/log/tre-dockerd.log 2>&1 &
  fi
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || die "the Docker engine did not answer within 60 s; see /var/log/tre-dockerd.log"
  echo "    engine $(docker version --format '{{.Server.Version}}')"
  done_step
}

# --- Python ---------------------------------------------------------------------------------------
python_env() {
  step "Python virtual environment (.venv) with the pinned dependencies (requirements.lock)"
  [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
  local stamp="$VENV/.tre-lock.sha256" want
  want="$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)"
  if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    "$VENV/bin/pip" install --progress-bar on --require-hashes -r requirements.lock
    "$VENV/bin/pip" install --no-deps -e . >/dev/null
    echo "$want" >"$stamp"
  else
    echo "    up to date"
  fi
  done_step
}

# --- Node tools -----------------------------------------------------------------------------------
node_tools() {
  step "configurable-http-proxy (pinned in package-lock.json, installed in ./node_modules)"
  local stamp="node_modules/.tre-lock.sha256" want
  want="$(sha256sum package-lock.json | cut -d' ' -f1)"
  if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    npm ci --no-audit --no-fund
    echo "$want" >"$stamp"
  else
    echo "    up to date"
  fi
  node_modules/.bin/configurable-http-proxy --version >/dev/null || die "configurable-http-proxy does not run"
  # the sign-on tests' OpenID provider (a devDependency, installed by the same npm ci)
  [[ -f node_modules/oidc-provider/package.json ]] || die "oidc-provider is missing from node_modules; run npm ci"
  done_step
}

# --- Images ---------------------------------------------------------------------------------------
analysis_images() {
  step "Analysis images (base debian:bookworm-slim, then singleuser and r; cached after the first build)"
  # Built only here; each catalogue (the demo's, the tests') registers them with `tre images register`.
  "$VENV/bin/tre" images build singleuser r --no-register
  done_step
}

# --- PostgreSQL (tests run the catalogue on it as well as on SQLite) -------------------------------
PG_TEST_URL="postgresql+psycopg://tre_test:tre_test@127.0.0.1:5432/postgres"
postgresql() {
  step "PostgreSQL on 127.0.0.1 (the catalogue's tests run on it and on SQLite)"
  apt_install postgresql
  if ! pg_lsclusters -h 2>/dev/null | grep -q .; then
    pg_createcluster "$(ls /usr/lib/postgresql | sort -n | tail -1)" main
  fi
  read -r version cluster port status _ < <(pg_lsclusters -h | head -1)
  if [[ "$status" != online* ]]; then
    if [[ -d /run/systemd/system ]]; then systemctl start "postgresql@$version-$cluster"; else pg_ctlcluster "$version" "$cluster" start; fi
  fi
  for _ in $(seq 1 30); do runuser -u postgres -- psql -p "$port" -qAtc 'select 1' >/dev/null 2>&1 && break; sleep 1; done
  runuser -u postgres -- psql -p "$port" -qAtc "select 1 from pg_roles where rolname = 'tre_test'" | grep -q 1 \
    || runuser -u postgres -- psql -p "$port" -qc "create role tre_test login createdb password 'tre_test'"
  PG_TEST_URL="postgresql+psycopg://tre_test:tre_test@127.0.0.1:$port/postgres"
  echo "    PostgreSQL $version on 127.0.0.1:$port (role tre_test, for tests only)"
  done_step
}

# --- Browser (the browser tests drive Debian's Chromium through Playwright; no browser download) ---
browser() {
  step "Chromium for the browser tests (Debian's package, driven by Playwright)"
  apt_install chromium
  "${TRE_CHROMIUM:-/usr/bin/chromium}" --version 2>/dev/null | sed 's/^/    /' \
    || die "Chromium does not run: ${TRE_CHROMIUM:-/usr/bin/chromium} (apt-get install chromium, or set TRE_CHROMIUM)"
  done_step
}

setup_all() { system_packages; docker_engine; python_env; node_tools; analysis_images; }

# --- Demo -----------------------------------------------------------------------------------------
hub_pid() { local f="$DEMO_HOME/jupyterhub.pid"; [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"; }

start_demo() {
  export TRE_HOME="$DEMO_HOME" TRE_INSTANCE=demo
  step "Demo catalogue, synthetic datasets, accounts and firewall rules (data in $DEMO_HOME)"
  "$VENV/bin/tre" demo init
  "$VENV/bin/tre" images register singleuser --as admin
  "$VENV/bin/tre" images register r --as admin
  "$VENV/bin/tre" firewall install
  done_step
  step "JupyterHub on http://127.0.0.1:8000"
  if pid=$(hub_pid); then
    echo "    already running (pid $pid)"
  else
    nohup "$VENV/bin/jupyterhub" -f "$REPO/jupyterhub_config.py" >>"$DEMO_HOME/hub.log" 2>&1 &
    for _ in $(seq 1 60); do curl -fsS -o /dev/null http://127.0.0.1:8000/hub/health 2>/dev/null && break; sleep 1; done
    curl -fsS -o /dev/null http://127.0.0.1:8000/hub/health || die "the hub did not start; see $DEMO_HOME/hub.log"
  fi
  done_step
  cat <<MSG

The demo runs on http://127.0.0.1:8000 (bound to 127.0.0.1 only: open it from this machine,
or through an SSH tunnel: ssh -L 8000:127.0.0.1:8000 <host>).

  Demo login (local accounts, synthetic data): alice, erin (project cardio-risk), bob
  (diabetes-outcomes), carol and dave (output checkers), admin.
  Password for every demo account: $("$VENV/bin/tre" demo password)

  Hub log: $DEMO_HOME/hub.log      Stop: sudo ./setup.sh stop      Reset: sudo ./setup.sh reset
MSG
}

stop_demo() {
  step "Stopping the demo hub and its workspaces"
  if pid=$(hub_pid); then
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  fi
  # the proxy outlives hub restarts (its own session); a hub that adopted it does not stop it
  local proxy
  if proxy=$(cat "$DEMO_HOME/proxy.pid" 2>/dev/null) && grep -qa configurable-http-proxy "/proc/$proxy/cmdline" 2>/dev/null; then
    kill "$proxy"
  fi
  if docker info >/dev/null 2>&1; then
    docker ps -aq --filter label=tre.instance=demo --filter label=tre.component=workspace | xargs -r docker rm -f >/dev/null
    docker network ls -q --filter label=tre.instance=demo | xargs -r docker network rm >/dev/null
  fi
  [[ -x "$VENV/bin/tre" ]] && TRE_HOME="$DEMO_HOME" TRE_INSTANCE=demo "$VENV/bin/tre" firewall remove
  done_step
}

case "$ACTION" in
  demo) setup_all; start_demo ;;
  test)
    setup_all
    postgresql
    browser
    step "SSH client for the deployment test (Ansible reaches its throwaway Debian target over SSH)"
    apt_install openssh-client
    done_step
    step "Test suite: unit (SQLite and PostgreSQL), then integration (real Docker engine, hub, proxy and Chromium)"
    TRE_TEST_POSTGRES_URL="$PG_TEST_URL" "$VENV/bin/python" -m pytest tests
    ;;
  stop) stop_demo ;;
  reset) stop_demo; rm -rf "$DEMO_HOME"; echo "    deleted $DEMO_HOME" ;;
esac
