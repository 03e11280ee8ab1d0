#!/usr/bin/env bash
# System programs the test suite talks to for real: Mosquitto (a broker per test, on a
# free port), Debian's Chromium (web app tests), poppler-utils (PDF text checks),
# VictoriaMetrics (it speaks the InfluxDB v2 write API, for the export test) and a
# PostgreSQL server on 127.0.0.1:5432. Installs what is missing when run as root on
# Debian; otherwise says what to install.
set -u
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v pdftotext >/dev/null 2>&1 || need+=(poppler-utils)
command -v victoria-metrics >/dev/null 2>&1 || [ -x /usr/bin/victoria-metrics ] || need+=(victoria-metrics)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need[*]} (apt-get)"
    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}") >/tmp/quartier-apt.log 2>&1 \
      || { echo "apt-get install ${need[*]} failed: see /tmp/quartier-apt.log"; exit 1; }
  else
    echo "missing system packages: ${need[*]} — install them with: sudo apt-get install ${need[*]}"; exit 1
  fi
fi
if ! (echo > /dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  echo "note: no PostgreSQL on 127.0.0.1:5432; PostgreSQL tests will fail. Start one (trust auth for local connections), e.g. pg_ctlcluster 15 main start"
fi
exit 0
