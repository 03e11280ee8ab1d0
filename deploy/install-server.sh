#!/usr/bin/env bash
# Install a Quartier community server on one Debian machine: Mosquitto with TLS and
# per-gateway ACLs, the community CA, ingest, settlement, the web app, and (optionally)
# a single-box chain (anvil with persisted state).
#
#   sudo deploy/install-server.sh --community ID --broker-host mqtt.example.org [options]
#
# Options:
#   --community ID       the community id (a topic level: lowercase, digits, '_', '-')
#   --broker-host NAME   host name (repeatable; IP addresses too) gateways use for the
#                        broker: the broker's certificate names them all
#   --root DIR           install under DIR (also DESTDIR=DIR): a check in a scratch
#                        directory, nothing is started, packages are not installed
#   --source PATH        what pip installs (default: this checkout)
#   --python PY          interpreter for the virtualenv (default python3 >= 3.11)
#   --pip-args ARGS      extra pip arguments (an offline wheelhouse, ...)
#   --anvil PATH         run the chain on this box with this anvil binary
#                        (contracts/: `npm ci`, then node_modules/.bin/anvil)
#   --postgres           create the PostgreSQL role and database (deploy/postgresql/)
#   --no-start           enable and start nothing; print the commands instead
#
# Idempotent: an existing CA, certificate or config is kept.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
root="${DESTDIR:-/}"
source_path="$repo"
python="${PYTHON:-python3}"
pip_args=""
community=""
hosts=()
anvil=""
postgres=0
start=1

die() { echo "install-server: $*" >&2; exit 1; }
say() { echo "install-server: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --community) community="${2:?}"; shift 2 ;;
    --broker-host) hosts+=("${2:?}"); shift 2 ;;
    --root) root="${2:?--root needs a directory}"; shift 2 ;;
    --root=*) root="${1#--root=}"; shift ;;
    --source) source_path="${2:?}"; shift 2 ;;
    --python) python="${2:?}"; shift 2 ;;
    --pip-args) pip_args="${2?}"; shift 2 ;;
    --anvil) anvil="${2:?}"; shift 2 ;;
    --postgres) postgres=1; shift ;;
    --no-start) start=0; shift ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ "$community" =~ ^[a-z0-9][a-z0-9_-]{0,63}$ ]] || die "--community ID is needed (lowercase letters, digits, '_', '-')"
[ ${#hosts[@]} -gt 0 ] || die "--broker-host NAME is needed (the name gateways connect to)"

root="$(mkdir -p "$root" && cd "$root" && pwd)"
R="${root%/}"
on_target() { [ -z "$R" ]; }
if on_target && [ "$(id -u)" != 0 ]; then die "run as root (sudo), or with --root DIR"; fi
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || die "$python is not Python 3.11+"
own() { if [ "$(id -u)" = 0 ]; then chown "$@"; fi; }

# --- system packages (on the target only) --------------------------------------------
if on_target; then
  need=()
  [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
  [ "$postgres" = 0 ] || command -v psql >/dev/null || need+=(postgresql)
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
  fi
fi

# --- user, directories ----------------------------------------------------------------
install -d -m 0755 "$R/usr/lib/sysusers.d" "$R/etc"
install -m 0644 "$here/sysusers.d/quartier.conf" "$R/usr/lib/sysusers.d/quartier.conf"
if on_target; then
  systemd-sysusers /usr/lib/sysusers.d/quartier.conf
else
  touch "$R/etc/passwd" "$R/etc/group" "$R/etc/shadow" "$R/etc/gshadow"
  systemd-sysusers --root="$root" "$R/usr/lib/sysusers.d/quartier.conf"
fi
uid="$(awk -F: '$1 == "quartier" {print $3}' "$R/etc/passwd")"
gid="$(awk -F: '$1 == "quartier" {print $3}' "$R/etc/group")"
mgid="$(awk -F: '$1 == "mosquitto" {print $3}' "$R/etc/group")"
[ -n "$uid" ] || die "user quartier was not created"

install -d -m 0755 "$R/opt/quartier" "$R/opt/quartier/share" "$R/etc/systemd/system" \
  "$R/etc/mosquitto/conf.d"
install -d -m 0750 "$R/etc/quartier" "$R/etc/quartier/tls" "$R/etc/mosquitto/quartier"
own "0:$gid" "$R/etc/quartier" "$R/etc/quartier/tls"
[ -z "$mgid" ] || own "0:$mgid" "$R/etc/mosquitto/quartier"
install -d -m 0750 "$R/var/lib/quartier"
own "$uid:$gid" "$R/var/lib/quartier"
install -d -m 0700 "$R/var/lib/quartier-ca"  # the CA key: root's alone

# --- program ---------------------------------------------------------------------------
venv="$R/opt/quartier/venv"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
say "installing $source_path into $venv"
# shellcheck disable=SC2086
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check $pip_args "$source_path"
q="$venv/bin/quartier"
"$q" --help >/dev/null || die "the installed quartier command does not run"
rm -rf "$R/opt/quartier/share/docs" "$R/opt/quartier/share/deploy"
cp -r "$repo/docs" "$R/opt/quartier/share/docs"
cp -r "$repo/deploy" "$R/opt/quartier/share/deploy"

# --- the community CA and certificates -------------------------------------------------
ca="$R/var/lib/quartier-ca"
if [ ! -e "$ca/ca.key" ]; then
  "$q" ca init --dir "$ca" --community "$community" >/dev/null
  say "community CA created in /var/lib/quartier-ca (back it up offline: docs/operating.md)"
fi
m="$R/etc/mosquitto/quartier"
if [ ! -e "$m/server.crt" ]; then
  host_args=(); for h in "${hosts[@]}"; do host_args+=(--host "$h"); done
  "$q" ca issue-server --dir "$ca" "${host_args[@]}" --out "$m" >/dev/null
fi
install -m 0644 "$ca/ca.crt" "$m/ca.crt"
install -m 0644 "$ca/crl.pem" "$m/crl.pem"
chmod 0640 "$m/server.key"
[ -z "$mgid" ] || own "0:$mgid" "$m/server.key"
install -m 0644 "$here/mosquitto/acl" "$m/acl"
install -m 0644 "$here/mosquitto/quartier.conf" "$R/etc/mosquitto/conf.d/quartier.conf"
t="$R/etc/quartier/tls"
for svc in quartier-ingest quartier-server; do
  if [ ! -e "$t/$svc.crt" ]; then
    "$q" ca issue-client --dir "$ca" --name "$svc" --out "$t" >/dev/null
  fi
  own "$uid:$gid" "$t/$svc.key"
done
install -m 0644 "$ca/ca.crt" "$t/ca.crt"

# --- configuration ---------------------------------------------------------------------
if [ ! -e "$R/etc/quartier/community.toml" ]; then
  sed "s/@COMMUNITY@/$community/" "$here/community.toml.example" > "$R/etc/quartier/community.toml"
fi
if [ ! -e "$R/etc/quartier/server.env" ]; then
  cat > "$R/etc/quartier/server.env" <<ENV
# Environment of the Quartier server units (ingest, settlement, web app).
# QUARTIER_DATABASE_URL=postgresql+psycopg2:///quartier?host=/var/run/postgresql
# The chain, for settlement (quartier chain deploy prints the ledger address):
# QUARTIER_RPC_URL=http://127.0.0.1:8545
# QUARTIER_LEDGER=0x...
# QUARTIER_SETTLER_KEY_FILE=/etc/quartier/settler.key
ENV
fi
chmod 0640 "$R/etc/quartier/community.toml" "$R/etc/quartier/server.env"
own "0:$gid" "$R/etc/quartier/community.toml" "$R/etc/quartier/server.env"

# --- units -----------------------------------------------------------------------------
units=(quartier-ingest.service quartier-app.service quartier-settle.service
       quartier-settle.timer quartier-ca-crl.service quartier-ca-crl.timer)
if [ -n "$anvil" ]; then
  units+=(quartier-chain.service)
  printf 'ANVIL=%s\n' "$anvil" > "$R/etc/quartier/chain.env"
fi
for u in "${units[@]}"; do
  install -m 0644 "$repo/systemd/$u" "$R/etc/systemd/system/$u"
done

# --- PostgreSQL ------------------------------------------------------------------------
if [ "$postgres" = 1 ]; then
  if on_target; then
    runuser -u postgres -- psql -v ON_ERROR_STOP=1 -f "$here/postgresql/setup.sql"
  else
    say "under --root: run deploy/postgresql/setup.sql on the target (docs/community-server.md)"
  fi
fi

# --- start -----------------------------------------------------------------------------
enable=(quartier-ingest.service quartier-app.service quartier-settle.timer quartier-ca-crl.timer)
[ -z "$anvil" ] || enable=(quartier-chain.service "${enable[@]}")
if on_target && [ "$start" = 1 ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl restart mosquitto.service
  systemctl enable --now "${enable[@]}"
  say "running: systemctl status ${enable[*]}"
else
  say "installed under $root; on the target: systemctl daemon-reload && systemctl restart mosquitto && systemctl enable --now ${enable[*]}"
fi
say "enrol a gateway: quartier ca issue-gateway --dir /var/lib/quartier-ca --csr gateway.csr --address 0x… --out DIR"
