#!/usr/bin/env bash
# Device round 2 of issue 11's prefill work (bench/device/prepare_models.sh with DEST=.../s6/g11p copies this
# as run.sh): the whole-model bench vs PyTorch (run_models.sh) with the matmul variant sweep skipped
# (DENSE_SWEEP=0) and the flash candidates left in their library order (FLASH=0), bounded to 118 s.
D=$(dirname "$0")
DENSE_SWEEP=${DENSE_SWEEP:-0} FLASH=${FLASH:-0} OURS_TIMEOUT=${OURS_TIMEOUT:-80} timeout 118 bash "$D/run_models.sh" "$@"
echo "run.sh rc $?"
