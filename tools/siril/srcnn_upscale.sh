#!/bin/sh
# Siril 1.0.6 around srcnn-np: Siril's scripts (.ssf) cannot run other programs before Siril 1.4, so
# this shell script runs Siril, then srcnn-np on the FITS it saved, then Siril again on the result.
#
# usage: srcnn_upscale.sh WORKDIR PREPROCESS.ssf [SCALE]
#   PREPROCESS.ssf: your Siril script (run in WORKDIR), ending with `save result` (writes result.fit)
#   writes WORKDIR/result_xSCALE.fit (srcnn-np, FITS in result.fit's units) and
#   WORKDIR/result_xSCALE_asinh.tif (Siril: asinh stretch, 16-bit TIFF)
#   SRCNN_NP: the srcnn-np command (default: srcnn-np on PATH), e.g. "python3 -m srcnn_np"
# An existing result_xSCALE.fit is not replaced: srcnn-np refuses it and this script stops (set -e).
set -eu
[ $# -ge 2 ] || { echo "usage: $0 WORKDIR PREPROCESS.ssf [SCALE]" >&2; exit 2; }
workdir=$1
preprocess=$2
scale=${3:-2}
cd "$workdir"
siril-cli -d . -s "$preprocess"
${SRCNN_NP:-srcnn-np} upscale result.fit -o "result_x$scale.fit" --scale "$scale"
printf 'requires 1.0.0\nload result_x%s\nasinh 10\nsavetif result_x%s_asinh\n' "$scale" "$scale" | siril-cli -d . -s -
