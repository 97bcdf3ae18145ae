#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# buoy keygen / buoy csr: keys made on the node, 0600, never overwritten by accident; the
# WireGuard public key agrees with wireguard-tools' `wg pubkey`; the CSR verifies and asks
# for exactly spiffe://FLEET/node/NAME; a bad name is refused.
#   tests/agent/keys.sh [BUILD]
set -u
cd "$(dirname "$0")/../.." || exit 2
build=$(realpath "${1:-build}")
TAG=$(basename "$build")
. tests/lib/tap.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
OUT=$tmp/out
ERR=$tmp/err
s=$tmp/state
expect_rc "keygen" 0 "$build/buoy" keygen --state-dir "$s"
pub=$(awk '/^wireguard-public-key/ {print $2}' "$OUT")
check "state dir 0700, node.key and wg.key 0600" bash -c \
    "[ \$(stat -c %a '$s') = 700 ] && [ \$(stat -c %a '$s/node.key') = 600 ] && [ \$(stat -c %a '$s/wg.key') = 600 ]"
check "WireGuard public key matches wg pubkey ($pub)" test "$pub" = "$(wg pubkey <"$s/wg.key")"
sum=$(sha256sum "$s/node.key" "$s/wg.key")
expect_rc "keygen again" 0 "$build/buoy" keygen --state-dir "$s"
check "keygen again keeps the keys" test "$sum" = "$(sha256sum "$s/node.key" "$s/wg.key")"
expect_rc "keygen --force" 0 "$build/buoy" keygen --state-dir "$s" --force
check "keygen --force makes new keys" test "$sum" != "$(sha256sum "$s/node.key" "$s/wg.key")"
expect_rc "csr" 0 "$build/buoy" csr --state-dir "$s" --fleet alpha --name node-a
check "CSR self-signature verifies" bash -c "openssl req -noout -verify <'$OUT' 2>&1 | grep -q 'verify OK'"
check "CSR asks for spiffe://alpha/node/node-a" bash -c "openssl req -noout -text <'$OUT' | grep -q 'URI:spiffe://alpha/node/node-a'"
check "CSR key is P-256" bash -c "openssl req -noout -text <'$OUT' | grep -q prime256v1"
expect_rc "csr for a bad name" 1 "$build/buoy" csr --state-dir "$s" --fleet alpha --name ../x
expect_rc "csr without node.key" 1 "$build/buoy" csr --state-dir "$tmp" --fleet alpha --name node-a
expect_rc "csr without --name" 2 "$build/buoy" csr --state-dir "$s" --fleet alpha
