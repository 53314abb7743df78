#!/bin/sh
# Bounded libFuzzer runs (clang, ASan + UBSan), one per target:
#   fuzz_parse      native/uh_parse.c       seeds fuzz/corpus/
#   fuzz_multipart  native/uh_multipart.c   seeds fuzz/corpus_multipart/
#   fuzz/run_libfuzzer.sh [seconds per target] [target...]   default 60, all
# Builds into fuzz/_build/, fuzzes a copy of the seeds plus fuzz/regressions/;
# on a crash the input is saved to fuzz/regressions/ (replayed by
# fuzz/test_regressions.py and fuzz/test_multipart.py) and the script exits
# non-zero.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-fuzz_parse fuzz_multipart}
if ! command -v clang >/dev/null 2>&1 || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  "$here/../tools/setup-deps.sh" fuzz
fi
CC=clang
command -v clang >/dev/null 2>&1 || CC=$(ls /usr/bin/clang-[0-9]* | head -n1)
mkdir -p "$here/regressions"
for t in $targets; do
  case $t in
    fuzz_parse) src=uh_parse.c; seeds=corpus; prefix= ;;
    fuzz_multipart) src="uh_multipart.c uh_parse.c"; seeds=corpus_multipart; prefix=multipart- ;;
    *) echo "unknown target $t" >&2; exit 2 ;;
  esac
  out="$here/_build/libfuzzer/$t"
  mkdir -p "$out/corpus"
  $CC -g -O1 -std=c99 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
      -I"$here/../native" "$here/libfuzzer/$t.c" $(for s in $src; do echo "$here/../native/$s"; done) -o "$out/$t"
  cp "$here/$seeds"/* "$out/corpus/" 2>/dev/null || true
  for f in "$here"/regressions/*; do
    [ -e "$f" ] || continue
    case $(basename "$f") in multipart-*) [ -n "$prefix" ] ;; *) [ -z "$prefix" ] ;; esac && cp "$f" "$out/corpus/"
  done
  set +e
  "$out/$t" -max_total_time="$secs" -max_len=4096 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="$here/regressions/$prefix" "$out/corpus" 2>"$out/log.txt"
  rc=$?
  set -e
  echo "== $t"
  tail -n 12 "$out/log.txt"
  if [ $rc -ne 0 ]; then
    echo "libFuzzer found a problem in $t (rc=$rc); input saved in fuzz/regressions/" >&2
    exit $rc
  fi
done
