#!/usr/bin/env bash
# Installs what tslcd-monitor needs on Debian 12, idempotently:
#   scripts/setup.sh run   Debian packages for probing + .venv with the program
#   scripts/setup.sh test  also the real components the tests start (Mosquitto, Prometheus,
#                          Alertmanager, Chromium) and the test dependencies
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}

run_pkgs=(fping iproute2 iptables python3-venv)
test_pkgs=(mosquitto mosquitto-clients prometheus prometheus-alertmanager chromium openssl nftables snmpd snmp)
pkgs=("${run_pkgs[@]}")
[ "$mode" = test ] && pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's packaged daemons must not run on their default ports behind the tests' backs.
if [ "$mode" = test ]; then
  for svc in mosquitto prometheus prometheus-alertmanager prometheus-node-exporter; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
      systemctl stop "$svc" || true
    fi
  done
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
extras=""
[ "$mode" = test ] && extras="[test,bench]"
.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e ".${extras}"
# Byte-compile the project once: where PYTHONDONTWRITEBYTECODE is set, every start of
# tslcd-monitor would otherwise compile its modules again (50 ms of each `check`).
.venv/bin/python -m compileall -q inventory probes monitor bench \
  .venv/lib/python3*/site-packages/__editable___*_finder.py >/dev/null
