#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# The fleet PKI of lib/pki.h made with the openssl CLI instead of our C code: a stand-in
# for build/tools/pki_fixture with the same output layout, so tests/interop/run.sh can
# run (PKI_FIXTURE=tests/interop/openssl_fixture.sh) before or without the C fixture, and
# so our TLS can be checked against certificates it did not make itself.
#   tests/interop/openssl_fixture.sh OUTDIR [FLEET]      (FLEET defaults to alpha)
# Writes, EC P-256 throughout:
#   ca.pem              root + Fleet CA          crl.pem   empty CRLs of both CAs
#   controller.pem/.key spiffe://FLEET/controller   (chain: leaf, Fleet CA)
#   node-a.pem/.key     spiffe://FLEET/node/node-a  (chain: leaf, Fleet CA)
#   node-b.pem/.key     spiffe://FLEET/node/node-b
# Leaves carry exactly one SAN, the SPIFFE URI (no DNS name), as pki_issue makes them.
set -eu
[ $# -ge 1 ] || { echo "usage: $0 OUTDIR [FLEET]" >&2; exit 2; }
out=$1
fleet=${2:-alpha}
mkdir -p "$out"
cd "$out"
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
# ca_conf DIR: a minimal `openssl ca` setup, only for -gencrl.
ca_conf() {
	mkdir -p "$1"
	: >"$1/index.txt"
	echo 1000 >"$1/crlnumber"
	cat >"$1/ca.cnf" <<-EOF
		[ca]
		default_ca = d
		[d]
		database = $1/index.txt
		crlnumber = $1/crlnumber
		default_md = sha256
		default_crl_days = 30
	EOF
}

key root.key
openssl req -x509 -new -key root.key -subj "/CN=PharosVPN root $fleet" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:1" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out root.pem
key fleet-ca.key
openssl req -new -key fleet-ca.key -subj "/CN=PharosVPN fleet CA $fleet" -out "$w/ca.csr"
printf '%s\n' "basicConstraints=critical,CA:TRUE,pathlen:0" \
    "keyUsage=critical,keyCertSign,cRLSign" "subjectKeyIdentifier=hash" \
    "authorityKeyIdentifier=keyid" >"$w/ca.ext"
openssl x509 -req -in "$w/ca.csr" -CA root.pem -CAkey root.key -set_serial "0x$(openssl rand -hex 15)" \
    -days 1825 -sha256 -extfile "$w/ca.ext" -out fleet-ca.pem 2>/dev/null
cat root.pem fleet-ca.pem >ca.pem

leaf() { # NAME SPIFFE-ID
	key "$1.key"
	openssl req -new -key "$1.key" -subj "/CN=$1" -out "$w/$1.csr"
	printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
	    "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=URI:$2" \
	    "authorityKeyIdentifier=keyid" >"$w/$1.ext"
	openssl x509 -req -in "$w/$1.csr" -CA fleet-ca.pem -CAkey fleet-ca.key \
	    -set_serial "0x$(openssl rand -hex 15)" -days 365 -sha256 -extfile "$w/$1.ext" \
	    -out "$w/$1.leaf.pem" 2>/dev/null
	cat "$w/$1.leaf.pem" fleet-ca.pem >"$1.pem"
}
leaf controller "spiffe://$fleet/controller"
leaf node-a "spiffe://$fleet/node/node-a"
leaf node-b "spiffe://$fleet/node/node-b"

ca_conf "$w/root"
ca_conf "$w/fleet"
openssl ca -config "$w/root/ca.cnf" -gencrl -keyfile root.key -cert root.pem -out "$w/root.crl" 2>/dev/null
openssl ca -config "$w/fleet/ca.cnf" -gencrl -keyfile fleet-ca.key -cert fleet-ca.pem \
    -out "$w/fleet.crl" 2>/dev/null
cat "$w/root.crl" "$w/fleet.crl" >crl.pem
chmod 600 ./*.key
openssl verify -crl_check_all -CRLfile crl.pem -CAfile root.pem -untrusted fleet-ca.pem \
    controller.pem node-a.pem node-b.pem >/dev/null
