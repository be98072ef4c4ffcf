#!/usr/bin/env bash
# The dataframe commands one after another on a small table pair (examples/data/join_demo:
# device info and monthly usage of mobile users, joined on use_id): installs what is missing,
# builds, runs them. Results go to out/table_demo/ (or $DEMO_OUT).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install_deps.sh"
"$root/scripts/build.sh"
deeprc="${BUILD_DIR:-$root/build}/apps/deeprc"
data="$root/examples/data/join_demo"
out="${DEMO_OUT:-$root/out/table_demo}"
mkdir -p "$out"

# step TITLE COMMAND...: prints the title and the command, runs it.
step() {
  if [[ -n "$1" ]]; then printf '\n== %s\n' "$1"; fi
  printf '$ %s\n' "${*:2}"
  "${@:2}"
}
# rows FILE: how many rows a result holds.
rows() { printf '   -> %s: %s\n' "${1#"$out"/}" "$("$deeprc" table schema "$1" | tail -n 1)"; }

step "What the inputs hold" "$deeprc" table schema "$data/user_usage_tm.csv"
step "" "$deeprc" table schema "$data/user_device_tm.csv"
step "Join usage with devices on use_id (inner)" \
  "$deeprc" table join "$data/user_usage_tm.csv" "$data/user_device_tm.csv" --on use_id \
  --how inner -o "$out/joined.drt"
rows "$out/joined.drt"
step "Keep heavy users" \
  "$deeprc" table filter "$out/joined.drt" --where "monthly_mb > 1000 and platform_version is not null" \
  -o "$out/heavy.drt"
rows "$out/heavy.drt"
step "Usage per platform version" \
  "$deeprc" table groupby "$out/joined.drt" --by platform_version \
  --agg "use_id:count,monthly_mb:mean,monthly_mb:median,outgoing_mins_per_month:sum" \
  -o "$out/by_platform.drt"
rows "$out/by_platform.drt"
step "Platforms by mean monthly data, largest first" \
  "$deeprc" table sort "$out/by_platform.drt" --by monthly_mb_mean --descending monthly_mb_mean \
  -o "$out/by_platform.csv"
step "" "$deeprc" table head "$out/by_platform.csv" -n 10 -o -
step "Users without device information (anti join)" \
  "$deeprc" table join "$data/user_usage_tm.csv" "$data/user_device_tm.csv" --on use_id \
  --how anti -o "$out/no_device.csv"
rows "$out/no_device.csv"
printf '\nResults in %s:\n' "$out"
ls -l "$out"
