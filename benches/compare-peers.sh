#!/usr/bin/env bash
# Builds and runs, in turn, userstate's compare program on SQLite and the
# cqrs-es 0.5 / sqlite-es 0.5 peer (benches/peers, its own cargo project:
# sqlx and rusqlite link different libsqlite3-sys versions) on the same
# workload: USERS users preloaded, one caller locking and unlocking them,
# SQLite in WAL mode with synchronous FULL (durable) and NORMAL (relaxed).
# Both run twice, alternating, so that drift of the machine cancels out.
#
# Prints, per mode: peer sqlite <mode> <our ops/s ÷ the peer's ops/s> (one
# caller), peer-inline sqlite <mode> <ratio> (one caller, the adapter's
# inline writes), and peer-64 sqlite <mode> <ratio> with 64 concurrent callers.
#
# Usage: benches/compare-peers.sh            (USERS=10000 ROUNDS=4 ROUND_SECONDS=0.75)
set -euo pipefail
cd "$(dirname "$0")/.."

USERS=${USERS:-10000}
ROUNDS=${ROUNDS:-4}
ROUND_SECONDS=${ROUND_SECONDS:-0.75}

if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
  ours_bin="$CARGO_TARGET_DIR/release/compare"
  peer_bin="$CARGO_TARGET_DIR/release/peer"
else
  ours_bin="target/release/compare"
  peer_bin="benches/peers/target/release/peer"
fi

cargo build --quiet --release -p userstate-benches --bin compare
cargo build --quiet --release --manifest-path benches/peers/Cargo.toml

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for run in 1 2; do
  echo "== run $run: userstate-sqlite" >&2
  "$ours_bin" --only sqlite --users "$USERS" --rounds "$ROUNDS" --seconds "$ROUND_SECONDS" \
    > "$out/ours-$run.txt"
  grep -E '^(sqlite +(durable|relaxed) +[0-9]+ +1 )' "$out/ours-$run.txt" >&2 || true
  echo "== run $run: cqrs-es + sqlite-es" >&2
  "$peer_bin" --users "$USERS" --rounds "$ROUNDS" --seconds "$ROUND_SECONDS" > "$out/peer-$run.txt"
  grep -E '^cqrs-es' "$out/peer-$run.txt" >&2 || true
done

# ops <adapter> <mode> <users> <callers> <engine> <ops/s>, summed over both runs.
sum_ops() { # file-glob adapter mode callers engine
  cat $1 | awk -v a="$2" -v m="$3" -v u="$USERS" -v c="$4" -v e="$5" \
    '$1=="ops" && $2==a && $3==m && $4==u && $5==c && $6==e {s+=$7} END {print s+0}'
}
for callers in 1 64; do
  for mode in durable relaxed; do
    ours=$(sum_ops "$out/ours-*.txt" sqlite "$mode" "$callers" library)
    peer=$(sum_ops "$out/peer-*.txt" cqrs-es "$mode" "$callers" peer)
    echo "ops sqlite $mode $USERS $callers library $((ours / 2))"
    echo "ops cqrs-es $mode $USERS $callers peer $((peer / 2))"
    # The figure of the comparison is one caller's; 64 callers show group commit.
    label=$([[ $callers == 1 ]] && echo "peer" || echo "peer-$callers")
    awk -v o="$ours" -v p="$peer" -v m="$mode" -v l="$label" \
      'BEGIN { if (p > 0) printf "%s sqlite %s %.2f\n", l, m, o / p; else print l " sqlite " m " n/a" }'
    if [[ $callers == 1 ]]; then
      # One caller with the adapter's inline writes (no thread hand-off).
      inline=$(sum_ops "$out/ours-*.txt" sqlite "$mode" 1 inline)
      echo "ops sqlite $mode $USERS 1 inline $((inline / 2))"
      awk -v o="$inline" -v p="$peer" -v m="$mode" \
        'BEGIN { if (p > 0) printf "peer-inline sqlite %s %.2f\n", m, o / p; else print "peer-inline sqlite " m " n/a" }'
    fi
  done
done
