# Shared by the bench scripts (sourced, not run).

# Wait (bounded) until something listens on host:port.
wait_port() {
  for _ in $(seq 200); do (echo >"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.05; done
  echo "no listener on $1" >&2
  return 1
}

# Every smtp-sink here runs with -m 5000: by default it serves 256 connections at once and
# leaves the rest queued in the kernel, and a relay's pool of idle upstream connections (256 in
# wan.sh) plus the next path's sessions went past that, so the next path's sessions waited
# seconds for a turn (nginx at 50 ms and 200 clients: 376 msgs/s after the gate's run, 1,105
# before it).

# ports_free HOST:PORT...: fail if anything listens on one of them already. A process left over
# from an earlier run would otherwise answer in place of the one a script starts (whose bind
# fails), and wait_port could not tell: the run would measure the wrong thing without a word.
ports_free() {
  local a busy=()
  for a in "$@"; do
    (echo >"/dev/tcp/${a%:*}/${a#*:}") 2>/dev/null && busy+=("$a")
  done
  [ ${#busy[@]} -eq 0 ] && return 0
  echo "already in use (a process left from an earlier run?): ${busy[*]}" >&2
  return 1
}

# The benchmark tenant: contoso.com accepted, loopback on an OnPremises IP connector.
BENCH_TENANT='[[accepted_domains]]
domain = "contoso.com"
[[inbound_connectors]]
name = "bench"
connector_type = "OnPremises"
sender_ip_addresses = ["127.0.0.0/24"]'

# relaygate_conf LISTEN UPSTREAM [OPTION=VALUE ...]: the gate's configuration for a benchmark,
# on stdout; the one place the bench scripts write one. The benchmark tenant (BENCH_TENANT),
# log level warn, and:
#   tls=client             STARTTLS to clients with certs/gate.pem, client certificates
#                          requested from certs/ca.pem (default: none, no STARTTLS)
#   upstream_tls=required  STARTTLS upstream, verified against certs/ca.pem as "localhost"
#                          (default: none)
#   pool=N                 pool_max_idle (default: the gate's own)
#   max=N                  max_connections and max_connections_per_ip (default 5000)
#   max_message_size=N     (default: the gate's own)
#   name=NAME              hostname NAME.bench (default gate)
relaygate_conf() {
  local listen=$1 upstream=$2 tls=none upstream_tls=none pool="" max=5000 size="" name=gate opt
  shift 2
  for opt in "$@"; do
    case $opt in
      tls=*) tls=${opt#*=} ;;
      upstream_tls=*) upstream_tls=${opt#*=} ;;
      pool=*) pool=${opt#*=} ;;
      max=*) max=${opt#*=} ;;
      max_message_size=*) size=${opt#*=} ;;
      name=*) name=${opt#*=} ;;
      *) echo "relaygate_conf: unknown option $opt" >&2; return 1 ;;
    esac
  done
  echo "[server]"
  echo "hostname = \"$name.bench\""
  echo "listen = [\"$listen\"]"
  echo "max_connections = $max"
  echo "max_connections_per_ip = $max"
  [ -z "$size" ] || echo "max_message_size = $size"
  if [ "$tls" = client ]; then
    printf '[tls]\ncertificate = "certs/gate.pem"\nprivate_key = "certs/gate.key"\nclient_ca = "certs/ca.pem"\n'
  fi
  echo "$BENCH_TENANT"
  echo "[upstream]"
  echo "kind = \"smtp\""
  echo "address = \"$upstream\""
  echo "tls = \"$upstream_tls\""
  if [ "$upstream_tls" != none ]; then
    printf 'tls_server_name = "localhost"\nca = "certs/ca.pem"\n'
  fi
  [ -z "$pool" ] || echo "pool_max_idle = $pool"
  printf '[log]\nlevel = "warn"\n'
}

# postfix_start DIR LISTEN [main.cf line...]: a private Postfix instance, all of it in DIR (its
# main.cf and master.cf in DIR/etc, queue in DIR/spool, data in DIR/data, log in DIR/maillog),
# its smtpd on LISTEN (127.0.0.1:PORT), started with `postfix -c DIR/etc start` and ready when
# this returns. The system's /etc/postfix is only read (by `postfix check`), never changed, and
# nothing the machine's own Postfix uses is shared. Needs root, as any Postfix does; the
# `postfix` user must be able to reach DIR (its parents searchable: mktemp -d makes them 0700).
postfix_start() {
  local dir=$1 listen=$2; shift 2
  mkdir -p "$dir/etc" "$dir/spool"
  chmod 755 "$dir"
  {
    echo "compatibility_level = 3.6"
    echo "config_directory = $dir/etc"
    echo "queue_directory = $dir/spool"
    echo "data_directory = $dir/data"
    echo "maillog_file = $dir/maillog"
    echo "maillog_file_prefixes = $dir"
    echo "inet_interfaces = 127.0.0.1"
    echo "inet_protocols = ipv4"
    echo "mydestination ="
    echo "alias_maps ="
    echo "alias_database ="
    printf '%s\n' "$@"
  } > "$dir/etc/main.cf"
  # Debian's services for mail in and out over SMTP, none chrooted (a chroot would need copies
  # of system files in the queue directory).
  cat > "$dir/etc/master.cf" <<CF
$listen inet n - n - - smtpd
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -    - proxymap
smtp      unix  - - n -    - smtp
relay     unix  - - n -    - smtp
showq     unix  n - n -    - showq
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
CF
  # check creates the queue's subdirectories and the data directory with their owners.
  if ! postfix -c "$dir/etc" check || ! postfix -c "$dir/etc" start; then
    echo "postfix in $dir did not start; its log:" >&2
    cat "$dir/maillog" >&2 2>/dev/null || true
    return 1
  fi
  wait_port "$listen"
}

# postfix_pids DIR: the processes of the instance in DIR (its master's process group).
postfix_pids() {
  local master
  master=$(sed 1q "$1/spool/pid/master.pid" 2>/dev/null | tr -d ' ') || return 0
  [ -n "$master" ] && pgrep -g "$master" || true
}

# postfix_stop DIR: stop the instance in DIR, if it runs (postfix stop waits for it, bounded).
postfix_stop() {
  [ -e "$1/etc/main.cf" ] && postfix -c "$1/etc" stop >/dev/null 2>&1 || true
}

# nginx_mail_start DIR LISTEN AUTH UPSTREAM [MAIL_LINES]: nginx's mail proxy from its own
# directory DIR (never the system's), listening for SMTP on LISTEN, sending every session to
# UPSTREAM (host:port) through a fixed auth_http answer on AUTH, with MAIL_LINES (TLS,
# capabilities) added to its mail block; returns once it listens. Stop it with
# `nginx -p DIR -c DIR/nginx.conf -s stop`.
nginx_mail_start() {
  local dir=$1 listen=$2 auth=$3 upstream=$4 extra=${5:-}
  mkdir -p "$dir/logs"
  cat >"$dir/nginx.conf" <<NGX
load_module /usr/lib/nginx/modules/ngx_mail_module.so;
worker_processes 2;
worker_rlimit_nofile 20000;
error_log $dir/logs/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 8192; }
http {
  access_log off;
  server {
    listen $auth;
    location /auth {
      add_header Auth-Status OK;
      add_header Auth-Server ${upstream%:*};
      add_header Auth-Port ${upstream#*:};
      return 204;
    }
  }
}
mail {
  server_name nginx.bench;
  auth_http $auth/auth;
  proxy_pass_error_message on;
  xclient off;
  smtp_auth none;
$extra
  server { listen $listen; protocol smtp; }
}
NGX
  nginx -p "$dir" -c "$dir/nginx.conf"
  wait_port "$listen"
}
