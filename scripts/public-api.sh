#!/usr/bin/env bash
# The public API listing, committed as tests/public_api.txt so that every change to
# the public API shows in review. `scripts/public-api.sh` fails when the listing is
# out of date; `scripts/public-api.sh --bless` writes it anew. Needs a nightly
# toolchain (rustdoc JSON); installs cargo-public-api when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.52.0
if ! cargo public-api --version 2>/dev/null | grep -q "$version"; then
    cargo install cargo-public-api --locked --version "$version"
fi
listing=tests/public_api.txt
# --simplified drops the blanket impls (From<T> for T and the like) and keeps the
# auto traits, whose loss (Send, Sync) would break users.
fresh=$(cargo public-api --all-features --simplified)
if [ "${1:-}" = "--bless" ]; then
    printf '%s\n' "$fresh" > "$listing"
    echo "wrote $listing ($(wc -l < "$listing") lines)"
elif ! diff -u "$listing" <(printf '%s\n' "$fresh"); then
    echo "the public API changed: review the diff above, then run scripts/public-api.sh --bless" >&2
    exit 1
fi
