#!/bin/sh
# Bounded libFuzzer runs (clang, ASan + UBSan) over the pure-C files of
# native/, one target after another, the given seconds split between them.
#   fuzz/run_libfuzzer.sh [seconds] [target...]     default 60, every target
# Targets (harness, source, seed corpus, saved crashes):
#   parse      libfuzzer/fuzz_parse.c      native/uh_parse.c      corpus/            regressions/
#   wsframe    libfuzzer/fuzz_wsframe.c    native/uh_wsframe.c    corpus_wsframe/    regressions_wsframe/
#   multipart  libfuzzer/fuzz_multipart.c  native/uh_multipart.c  corpus_multipart/  regressions/multipart-*
# Builds into fuzz/_build/libfuzzer/<target>/ and fuzzes a working corpus
# there (kept between runs, fed with the seeds and the saved crashes); on a
# crash the input is saved to the target's regressions folder (replayed by
# fuzz/test_regressions.py), the other targets still run, and the script
# exits non-zero.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-parse wsframe multipart}
if ! command -v clang >/dev/null 2>&1 || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  "$here/../tools/setup-deps.sh" fuzz
fi
CC=clang
command -v clang >/dev/null 2>&1 || CC=$(ls /usr/bin/clang-[0-9]* | head -n1)
n=0
for t in $targets; do n=$((n + 1)); done
each=$((secs / n))
[ "$each" -ge 1 ] || each=1
status=0
for t in $targets; do
  case "$t" in
    parse) src=uh_parse.c; corpus=corpus; regs=regressions; prefix= ;;
    wsframe) src=uh_wsframe.c; corpus=corpus_wsframe; regs=regressions_wsframe; prefix= ;;
    multipart) src="uh_multipart.c uh_parse.c"; corpus=corpus_multipart; regs=regressions; prefix=multipart- ;;
    *) echo "unknown target $t" >&2; exit 2 ;;
  esac
  out="$here/_build/libfuzzer/$t"
  mkdir -p "$out/corpus" "$here/$regs"
  $CC -g -O1 -std=c99 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
      -I"$here/../native" "$here/libfuzzer/fuzz_$t.c" $(for f in $src; do echo "$here/../native/$f"; done) -o "$out/fuzz_$t"
  cp "$here/$corpus"/* "$out/corpus/" 2>/dev/null || true
  for f in "$here/$regs"/*; do
    [ -f "$f" ] || continue
    case $(basename "$f") in multipart-*) [ -n "$prefix" ] ;; *) [ -z "$prefix" ] ;; esac && cp "$f" "$out/corpus/"
  done
  set +e
  "$out/fuzz_$t" -max_total_time="$each" -max_len=8192 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="$here/$regs/$prefix" "$out/corpus" 2>"$out/log.txt"
  rc=$?
  set -e
  echo "== $t: ${each}s"
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|INFO: Running|Done)|#[0-9]+ *DONE' "$out/log.txt" || true
  tail -n 3 "$out/log.txt"
  if [ $rc -ne 0 ]; then
    echo "libFuzzer found a problem in $t (rc=$rc); input saved in fuzz/$regs/" >&2
    status=$rc
  fi
done
exit $status
