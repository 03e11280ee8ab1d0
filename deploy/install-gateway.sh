#!/usr/bin/env bash
# Install the Quartier gateway on a Raspberry Pi (or any Debian-like system with systemd).
#
#   sudo deploy/install-gateway.sh [options] [-- options of `quartier gateway setup`]
#
# It creates the `quartier` system user (member of `dialout`, for the meter's serial
# port), a virtualenv in /opt/quartier/venv with this package, the systemd unit, and runs
# `quartier gateway setup`, which probes the inverter and the meter and writes
# /etc/quartier/gateway.toml (with the signing key and a TLS certificate request).
#
# Options:
#   --root DIR        install under DIR instead of / (also: DESTDIR=DIR). Used to check
#                     the installation in a scratch directory: users go into DIR/etc/passwd
#                     (systemd-sysusers --root), nothing is started. The virtualenv is
#                     built for this machine, so for an SD-card image run the script inside
#                     the image (chroot or systemd-nspawn) rather than with --root.
#   --source PATH     what pip installs (default: the checkout this script is in).
#   --python PY       interpreter for the virtualenv (default: python3, 3.11 or newer).
#   --pip-args ARGS   extra pip arguments, e.g. "--no-index --find-links /media/usb/wheels"
#                     for a Pi without Internet access.
#   --no-setup        do not run the config wizard (write the config by hand later).
#   --no-start        install and enable nothing; print the commands instead.
#
# Everything after `--` goes to `quartier gateway setup` (e.g. -- --community lesvignes
# --mqtt-url mqtts://mqtt.lesvignes.example:8883 --modbus tcp://192.168.1.20:502 --yes).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
root="${DESTDIR:-/}"
source_path="$repo"
python="${PYTHON:-python3}"
pip_args=""
run_setup=1
start=1
setup_args=()

die() { echo "install-gateway: $*" >&2; exit 1; }
say() { echo "install-gateway: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="${2:?--root needs a directory}"; shift 2 ;;
    --root=*) root="${1#--root=}"; shift ;;
    --source) source_path="${2:?}"; shift 2 ;;
    --python) python="${2:?}"; shift 2 ;;
    --pip-args) pip_args="${2?}"; shift 2 ;;
    --no-setup) run_setup=0; shift ;;
    --no-start) start=0; shift ;;
    --) shift; setup_args=("$@"); break ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

root="$(mkdir -p "$root" && cd "$root" && pwd)"
R="${root%/}"  # prefix for paths on the target: "" when installing on this system
on_target() { [ -z "$R" ]; }

if on_target && [ "$(id -u)" != 0 ]; then
  die "run as root (sudo), or with --root DIR to install into a directory"
fi
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  || die "$python is not Python 3.11 or newer (Raspberry Pi OS bookworm has 3.11: apt install python3-venv)"

# --- the service user ---------------------------------------------------------------
install -d -m 0755 "$R/usr/lib/sysusers.d" "$R/etc"
install -m 0644 "$here/sysusers.d/quartier.conf" "$R/usr/lib/sysusers.d/quartier.conf"
if command -v systemd-sysusers >/dev/null 2>&1; then
  if on_target; then
    systemd-sysusers /usr/lib/sysusers.d/quartier.conf
  else
    touch "$R/etc/passwd" "$R/etc/group" "$R/etc/shadow" "$R/etc/gshadow"
    systemd-sysusers --root="$root" "$R/usr/lib/sysusers.d/quartier.conf"
  fi
elif on_target; then
  getent passwd quartier >/dev/null || useradd --system --user-group --home-dir /var/lib/quartier \
    --no-create-home --shell /usr/sbin/nologin quartier
  usermod -a -G dialout quartier
else
  die "systemd-sysusers is needed to create users under --root"
fi
uid="$(awk -F: '$1 == "quartier" {print $3}' "$R/etc/passwd")"
gid="$(awk -F: '$1 == "quartier" {print $3}' "$R/etc/group")"
[ -n "$uid" ] && [ -n "$gid" ] || die "user quartier was not created in $R/etc/passwd"
grep -Eq '^dialout:[^:]*:[0-9]+:(.*,)?quartier(,|$)' "$R/etc/group" \
  || die "quartier is not in the dialout group of $R/etc/group"
say "user quartier (uid $uid) in group dialout"

own() {  # chown by number: under --root the names belong to the target, not this system
  if [ "$(id -u)" = 0 ]; then chown "$@"; fi
}

# --- directories ---------------------------------------------------------------------
install -d -m 0755 "$R/opt/quartier" "$R/opt/quartier/share" "$R/etc/systemd/system"
install -d -m 0750 "$R/etc/quartier" "$R/etc/quartier/tls"
own "0:$gid" "$R/etc/quartier" "$R/etc/quartier/tls"
install -d -m 0750 "$R/var/lib/quartier"
own "$uid:$gid" "$R/var/lib/quartier"

# --- the virtualenv --------------------------------------------------------------------
venv="$R/opt/quartier/venv"
if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv"
  "$python" -m venv "$venv"
fi
say "installing $source_path into $venv"
# shellcheck disable=SC2086  # pip_args is a list of words on purpose
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check $pip_args "$source_path"
"$venv/bin/quartier" --help >/dev/null || die "the installed quartier command does not run"

# Documentation next to the program (the units' Documentation= point here).
rm -rf "$R/opt/quartier/share/docs"
cp -r "$repo/docs" "$R/opt/quartier/share/docs"

# --- the unit --------------------------------------------------------------------------
install -m 0644 "$repo/systemd/quartier-gateway.service" "$R/etc/systemd/system/quartier-gateway.service"

# --- the config wizard -----------------------------------------------------------------
if [ "$run_setup" = 1 ]; then
  if [ -e "$R/etc/quartier/gateway.toml" ]; then
    say "$R/etc/quartier/gateway.toml exists: keeping it (run \`quartier gateway setup --force\` to redo it)"
  else
    # The wizard writes under the root; the paths inside the config are the target's.
    "$venv/bin/quartier" gateway setup --root "$root" "${setup_args[@]}"
  fi
  for f in "$R/etc/quartier/gateway.toml"; do [ -e "$f" ] && own "0:$gid" "$f" && chmod 0640 "$f"; done
  # The service reads its keys; nobody else does.
  for f in "$R/etc/quartier/gateway.key" "$R/etc/quartier/tls/gateway.key"; do
    [ -e "$f" ] && own "$uid:$gid" "$f" && chmod 0600 "$f"
  done
fi

# --- start -----------------------------------------------------------------------------
if on_target && [ "$start" = 1 ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  systemctl daemon-reload
  systemctl enable quartier-gateway.service
  if [ -e /etc/quartier/tls/gateway.crt ] || ! grep -q '^url = "mqtts' /etc/quartier/gateway.toml 2>/dev/null; then
    systemctl restart quartier-gateway.service
    say "started: systemctl status quartier-gateway; quartier gateway status --config /etc/quartier/gateway.toml"
  else
    say "enabled; start it once the community has sent gateway.crt and ca.crt for /etc/quartier/tls:"
    say "  sudo systemctl start quartier-gateway"
  fi
else
  say "installed under $root; on the target: systemctl daemon-reload && systemctl enable --now quartier-gateway"
fi
