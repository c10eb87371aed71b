#!/usr/bin/env bash
# Fuzz smoke run for CI: each target for N seconds (first argument, default
# 20), from the repository root. Installs cargo-fuzz if missing. Exits
# non-zero if any target crashes (the input is left in fuzz/artifacts/).
#
# The stable toolchain is enough: RUSTC_BOOTSTRAP=1 lets it take the -Z
# flags cargo-fuzz passes (sanitizer, coverage instrumentation).
set -uo pipefail

secs="${1:-20}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root" || exit 2

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked || exit 2
fi
export RUSTC_BOOTSTRAP=1

failed=()
targets=(submit_vs_serde line_codec server_message sv2_frames sv2_messages sv2_noise)
for t in "${targets[@]}"; do
    dirs=("fuzz/corpus/$t")
    mkdir -p "${dirs[0]}"
    [ -d "fuzz/seeds/$t" ] && dirs+=("fuzz/seeds/$t")
    flags=(-max_total_time="$secs" -print_final_stats=1)
    case "$t" in
        submit_vs_serde | server_message) flags+=(-dict=fuzz/json.dict) ;;
    esac
    echo "== fuzz $t for ${secs}s"
    if ! cargo fuzz run "$t" "${dirs[@]}" -- "${flags[@]}"; then
        failed+=("$t")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz smoke FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz smoke ok: ${#targets[@]} targets, ${secs}s each"
