#!/usr/bin/env bash
# Installs what scale needs on a fresh Debian machine: the HDF5 C library (headers for the build) and the
# Python packages the interop/parity tests call (anndata, scanpy). Idempotent; safe to re-run.
set -euo pipefail
need_apt=()
dpkg -s libhdf5-dev >/dev/null 2>&1 || need_apt+=(libhdf5-dev)
dpkg -s pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! python3 -c "import anndata, scanpy, pyarrow" >/dev/null 2>&1; then
  python3 -m pip install -q --disable-pip-version-check -r "$(dirname "$0")/requirements-test.txt"
fi
