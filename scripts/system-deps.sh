#!/usr/bin/env bash
# System packages the server and browser tests need, from Debian's packages: PostgreSQL (the
# Prefect and MLflow servers' database) and Chromium with its driver (the browser test).
# Installs only what is missing, only as root with apt-get; otherwise says what the tests will skip.
set -uo pipefail
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
(( ${#missing[@]} == 0 )) && exit 0
if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
  echo "[system-deps] not root or no apt-get: ${missing[*]} missing; the server/browser tests will skip" >&2
  exit 0
fi
echo "[system-deps] apt-get install ${missing[*]}" >&2
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
  echo "[system-deps] apt-get failed; the server/browser tests will skip" >&2
fi
exit 0
