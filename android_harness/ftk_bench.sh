#!/bin/sh
# ftk_bench.sh: run a benchmark binary (TensorFlow Lite's benchmark_model) N times on the device, pinned to CPUs,
# with a cool-down between runs, and print machine-readable result lines. POSIX sh (Android's mksh/toybox, dash).
#
# usage: ftk_bench.sh --binary PATH --threads N [--repeats R] [--cooldown SECONDS] [--cpus HEXMASK]
#                     [--interpreter PROGRAM] [--out DIR] -- BINARY_FLAGS...
#
# Output (stdout):
#   FTK_HARNESS version=1 threads=N repeats=R cpus=MASK|none pinned=yes|no
#   FTK_BEGIN repeat=I
#   ...the binary's stdout+stderr...
#   FTK_END repeat=I rc=RC wall_ms=MS|NA
#   FTK_TEMP repeat=I max_thermal_mc=VALUE          (when /sys/class/thermal is readable)
#   FTK_DONE repeats=R failures=F
# Each run's output is also kept in DIR/run_I.log (default: logs/ beside the binary) for the host to pull. Exit status: 0 if every run succeeded.
set -u

binary=""; threads=1; repeats=1; cooldown=0; cpus=""; interpreter=""; out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --cooldown) cooldown=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --interpreter) interpreter=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "ftk_bench.sh: unknown option $1" >&2; exit 64 ;;
  esac
done
[ -n "$binary" ] || { echo "ftk_bench.sh: --binary is required" >&2; exit 64; }
[ -f "$binary" ] || { echo "ftk_bench.sh: binary not found: $binary" >&2; exit 66; }
case "$threads$repeats" in *[!0-9]*) echo "ftk_bench.sh: --threads/--repeats must be integers" >&2; exit 64 ;; esac
[ -n "$interpreter" ] || chmod 755 "$binary" 2>/dev/null

# Default CPU set: the $threads cores with the highest maximum frequency (the big cores on a phone).
if [ -z "$cpus" ]; then
  list=""
  for d in /sys/devices/system/cpu/cpu[0-9]*; do
    n=${d##*/cpu}
    f=$(cat "$d/cpufreq/cpuinfo_max_freq" 2>/dev/null || echo 0)
    list="$list$f $n
"
  done
  mask=0
  for n in $(printf '%s' "$list" | sort -rn -k1,1 -k2,2 | head -n "$threads" | cut -d' ' -f2); do
    mask=$((mask | (1 << n)))
  done
  [ "$mask" -gt 0 ] && cpus=$(printf '%x' "$mask")
fi
pin=""
pinned=no
# Pin only when taskset exists and the mask is allowed here (containers and cpusets may forbid some cores).
if [ -n "$cpus" ] && command -v taskset >/dev/null 2>&1 && taskset "$cpus" true >/dev/null 2>&1; then
  pin="taskset $cpus"
  pinned=yes
fi
[ -n "$out" ] || out=$(dirname "$binary")/logs
mkdir -p "$out" || { echo "ftk_bench.sh: cannot create $out" >&2; exit 73; }

now_ms() {
  t=$(date +%s%N 2>/dev/null)
  case "$t" in
    ''|*[!0-9]*) echo NA ;;
    *) echo $((t / 1000000)) ;;
  esac
}

max_temp() {
  best=""
  for z in /sys/class/thermal/thermal_zone*/temp; do
    [ -r "$z" ] || continue
    v=$(cat "$z" 2>/dev/null) || continue
    case "$v" in ''|*[!0-9-]*) continue ;; esac
    if [ -z "$best" ] || [ "$v" -gt "$best" ]; then best=$v; fi
  done
  echo "$best"
}

echo "FTK_HARNESS version=1 threads=$threads repeats=$repeats cpus=${cpus:-none} pinned=$pinned"
failures=0
i=1
while [ "$i" -le "$repeats" ]; do
  if [ "$i" -gt 1 ] && [ "$cooldown" != "0" ]; then sleep "$cooldown"; fi
  log=$out/run_$i.log
  echo "FTK_BEGIN repeat=$i"
  start=$(now_ms)
  # $pin and $interpreter are deliberately unquoted: empty, or a command and its argument.
  # shellcheck disable=SC2086
  $pin $interpreter "$binary" "$@" > "$log.tmp" 2>&1
  rc=$?
  end=$(now_ms)
  cat "$log.tmp"
  mv "$log.tmp" "$log"
  if [ "$start" = NA ] || [ "$end" = NA ]; then wall=NA; else wall=$((end - start)); fi
  echo "FTK_END repeat=$i rc=$rc wall_ms=$wall"
  t=$(max_temp)
  [ -n "$t" ] && echo "FTK_TEMP repeat=$i max_thermal_mc=$t"
  [ "$rc" -eq 0 ] || failures=$((failures + 1))
  i=$((i + 1))
done
echo "FTK_DONE repeats=$repeats failures=$failures"
[ "$failures" -eq 0 ]
