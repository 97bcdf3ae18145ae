#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Fuzz smoke: run every libFuzzer target in build/fuzz/ for a bounded time under ASan and
# UBSan, seeded with the example fleet and the golden fixtures. A crash, leak or timeout
# fails the target; its reproducer is kept in build/fuzz/artifacts/.
#   tests/fuzz/run.sh [SECONDS]      (default 20 per target; FUZZ_SECONDS also works)
set -u
cd "$(dirname "$0")/../.." || exit 2
secs=${1:-${FUZZ_SECONDS:-20}}
. tests/lib/tap.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p build/fuzz/artifacts

# Seeds for fuzz_fleet_load: the first byte picks the record kind (fleet, node, relay, user).
seed() { # KIND FILE
	printf "\\x$(printf %02x "$1")" >"$tmp/seed.$$"
	cat "$2" >>"$tmp/seed.$$"
	mv "$tmp/seed.$$" "$tmp/corpus/$(sha1sum <"$2" | cut -c1-16)-$1"
}
mkdir -p "$tmp/corpus" "$tmp/split"
seed 0 fleet.example/fleet.yaml
for f in fleet.example/nodes/*.yaml; do seed 1 "$f"; done
for f in fleet.example/relays/*.yaml; do seed 2 "$f"; done
for f in fleet.example/users/*.yaml; do seed 3 "$f"; done
for fx in tests/schema/good/*.yaml tests/schema/bad/*.yaml; do
	d=$tmp/split/$(basename "$fx" .yaml)
	/usr/bin/python3 tests/schema/fixture.py split "$fx" "$d" 2>/dev/null || continue
	for f in "$d"/fleet.yaml; do [ -f "$f" ] && seed 0 "$f"; done
	for f in "$d"/nodes/*; do [ -f "$f" ] && seed 1 "$f"; done
	for f in "$d"/users/*; do [ -f "$f" ] && seed 3 "$f"; done
done

# Seeds for fuzz_grpc_wire: framed messages (first byte: the DATA-frame split size).
mkdir -p "$tmp/corpus-wire"
printf '\x03\x00\x00\x00\x00\x05hello\x00\x00\x00\x00\x00' >"$tmp/corpus-wire/two"
printf '\x01\x00\x00\x00\x04\x01' >"$tmp/corpus-wire/toobig"
printf '\x00%%C3%%9Cber%%20%%zz 1S' >"$tmp/corpus-wire/pct"

# Seeds for fuzz_uapi: a realistic get reply, and a `wg show dump`.
mkdir -p "$tmp/corpus-uapi"
printf 'private_key=%064d\nlisten_port=51820\npublic_key=%064d\nendpoint=192.0.2.1:51820\nlast_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5\ntx_bytes=10\nrx_bytes=20\npersistent_keepalive_interval=25\nallowed_ip=10.64.0.2/32\nerrno=0\n\n' 1 2 >"$tmp/corpus-uapi/get"
printf 'SEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEg=\tzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMw=\t51820\toff\nqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqo=\t(none)\t192.0.2.10:51820\t10.64.0.2/32,fd00:64::2/128\t1700000000\t20\t10\t25\n' >"$tmp/corpus-uapi/dump"

# Seeds for fuzz_admin_json: API request bodies.
mkdir -p "$tmp/corpus-admin"
printf '{"name":"alice","email":"a@example.com","full_name":"A <b>","role":"admin","disabled":false,"devices":[{"name":"phone","public_key":"RgZc4OAeym2WtRqgHdEj+r62Mq5Q6efVb3kk1bMZ0Q8=","address":"10.64.0.9"}]}' >"$tmp/corpus-admin/user"
printf '{"email":"no\\n: x","full_name":"- [a, b]","devices":[]}' >"$tmp/corpus-admin/yamlish"

for t in build/fuzz/fuzz_*; do
	[ -x "$t" ] || continue
	name=$(basename "$t")
	case $name in
	fuzz_fleet_load) corpus=$tmp/corpus ;;
	fuzz_grpc_wire) corpus=$tmp/corpus-wire ;;
	fuzz_uapi) corpus=$tmp/corpus-uapi ;;
	fuzz_admin_json) corpus=$tmp/corpus-admin ;;
	*) corpus=$tmp/corpus-$name; mkdir -p "$corpus" ;;
	esac
	if "$t" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
	    -print_final_stats=1 -artifact_prefix=build/fuzz/artifacts/ "$corpus" \
	    >"$tmp/$name.log" 2>&1; then
		runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$tmp/$name.log" |
		    grep -o '[0-9]*$')
		ok "fuzz $name: ${secs}s, ${runs:-?} inputs, no crash"
	else
		nok "fuzz $name: crashed; reproducer in build/fuzz/artifacts/"
		grep -E 'ERROR|SUMMARY|runtime error' "$tmp/$name.log" | head -5 | sed 's/^/#   /'
	fi
done
