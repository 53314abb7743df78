#!/bin/sh
# Bounded libFuzzer run (clang, ASan + UBSan) over native/uh_parse.c.
#   fuzz/run_libfuzzer.sh [seconds]        default 60
# Builds into fuzz/_build/, fuzzes a copy of fuzz/corpus/ plus fuzz/regressions/;
# on a crash the input is saved to fuzz/regressions/ (replayed by
# fuzz/test_regressions.py) and the script exits non-zero.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
secs=${1:-60}
if ! command -v clang >/dev/null 2>&1 || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  "$here/../tools/setup-deps.sh" fuzz
fi
CC=clang
command -v clang >/dev/null 2>&1 || CC=$(ls /usr/bin/clang-[0-9]* | head -n1)
out="$here/_build/libfuzzer"
mkdir -p "$out/corpus" "$here/regressions"
$CC -g -O1 -std=c99 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$here/../native" "$here/libfuzzer/fuzz_parse.c" "$here/../native/uh_parse.c" -o "$out/fuzz_parse"
cp "$here"/corpus/* "$out/corpus/" 2>/dev/null || true
cp "$here"/regressions/* "$out/corpus/" 2>/dev/null || true
set +e
"$out/fuzz_parse" -max_total_time="$secs" -max_len=4096 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$here/regressions/" "$out/corpus" 2>"$out/log.txt"
rc=$?
set -e
tail -n 12 "$out/log.txt"
if [ $rc -ne 0 ]; then
  echo "libFuzzer found a problem (rc=$rc); input saved in fuzz/regressions/" >&2
  exit $rc
fi
