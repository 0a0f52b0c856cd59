#!/usr/bin/env bash
# Development certificates for relaygate. Their private keys are published in this repository:
# never use them for anything but local testing. Run from anywhere; writes beside this script.
set -euo pipefail
cd "$(dirname "$0")"
days=3650
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# The development CA: trust anchor for client certificates (client_ca) and issuer of the gate's.
key ca.key
openssl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/CN=relaygate development CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem

issue() { # name subject san eku
  key "$1.key"
  openssl req -new -key "$1.key" -subj "$2" -out "$tmp/$1.csr"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' "$4" "$3" > "$tmp/$1.ext"
  openssl x509 -req -in "$tmp/$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days "$days" -sha256 \
    -extfile "$tmp/$1.ext" -out "$1.pem" 2>/dev/null
}

# The gate itself (STARTTLS towards clients).
issue gate "/CN=gate.contoso.com" "DNS:gate.contoso.com,DNS:localhost,IP:127.0.0.1,IP:::1" "serverAuth"
# An on-premises server's certificate, as Exchange servers have: trusted, mail.contoso.com.
issue client-mail.contoso.com "/CN=mail.contoso.com" "DNS:mail.contoso.com" "serverAuth,clientAuth"
# The same name, self-signed: presented, but no identity.
key client-selfsigned.key
openssl req -x509 -new -key client-selfsigned.key -sha256 -days "$days" -subj "/CN=mail.contoso.com" \
  -addext "subjectAltName=DNS:mail.contoso.com" -addext "extendedKeyUsage=serverAuth,clientAuth" -out client-selfsigned.pem
rm -f ca.srl
# PKCS#8 keys, readable by the gate and by swaks (IO::Socket::SSL).
for k in ca gate client-mail.contoso.com client-selfsigned; do
  openssl pkcs8 -topk8 -nocrypt -in "$k.key" -out "$tmp/$k.key" && mv "$tmp/$k.key" "$k.key"
done
echo "certificates written to $(pwd)"
