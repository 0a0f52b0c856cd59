# Shared by the bench scripts (sourced, not run).

# Wait (bounded) until something listens on host:port.
wait_port() {
  for _ in $(seq 200); do (echo >"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.05; done
  echo "no listener on $1" >&2
  return 1
}

# The benchmark tenant: contoso.com accepted, loopback on an OnPremises IP connector.
BENCH_TENANT='[[accepted_domains]]
domain = "contoso.com"
[[inbound_connectors]]
name = "bench"
connector_type = "OnPremises"
sender_ip_addresses = ["127.0.0.0/24"]'
