#!/usr/bin/env bash
# Installs Debian's Open MPI (openmpi-bin: mpirun; libopenmpi-dev: mpi.h and mpicc, which the MPI
# binding native/mpi/ builds against at install). Idempotent; quick when already installed.
# Only the MPI features (data-parallel training, MpiShardedAttention, spec/mpi, bench --only mpi)
# need it: setup.sh goes on without it. Needs root or password-less sudo for apt-get.
set -euo pipefail
if command -v mpirun >/dev/null 2>&1 && command -v mpicc >/dev/null 2>&1 && mpicc --showme:compile >/dev/null 2>&1; then
  echo "[setup-mpi] Open MPI $(mpirun --version 2>/dev/null | head -1 | grep -o '[0-9][0-9.]*' | head -1) already installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[setup-mpi] no apt-get here: install Open MPI (mpirun, mpicc, mpi.h) with your package manager" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "[setup-mpi] not root and no password-less sudo: run 'apt-get install openmpi-bin libopenmpi-dev' as root" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends openmpi-bin libopenmpi-dev >/dev/null 2>&1; then
  $SUDO apt-get update >/dev/null
  $SUDO apt-get install -y --no-install-recommends openmpi-bin libopenmpi-dev >/dev/null
fi
echo "[setup-mpi] installed Open MPI $(mpirun --version 2>/dev/null | head -1 | grep -o '[0-9][0-9.]*' | head -1)"
