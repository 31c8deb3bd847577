#!/bin/bash
# tests/vm/guestfwd-check.sh — guest side of selftest.sh (runs inside the VM, never on the host).
# Run with VM_APISERVER_PORT=<port of a host-loopback HTTP server serving selftest.sh's files>;
# expects ./expected (copied in by selftest.sh): line 1 token, line 2 sha256 of /blob, line 3 host epoch.
# Checks the guest NIC setup and that 10.0.2.100:6443 reaches the host server over several sequential
# and concurrent connections, and that restrict=on keeps the host itself unreachable.
fails=0
ok()  { echo "=== PASS $*"; }
bad() { echo "=== FAIL $*"; fails=$((fails+1)); }
{ read -r token; read -r blobsum; read -r host_epoch; read -r port; } < expected
A=${VM_APISERVER:-10.0.2.100:6443}; H=${A%:*}; P=${A#*:}

ip -br addr show eth0
if ip -4 addr show eth0 | grep -q 'inet 10.0.2.15/24' && [ -z "$(ip route show default)" ]; then
  ok "eth0 is 10.0.2.15/24, no default route"; else bad "eth0 setup"; ip route; fi

skew=$(( $(date +%s) - host_epoch )); skew=${skew#-}
[ "$skew" -lt 300 ] && ok "guest clock within ${skew}s of host (TLS needs it)" || bad "guest clock off by ${skew}s"

# request 1: busybox wget
r1=$(timeout 20 wget -qO- "http://$A/token") && [ "$r1" = "$token" ] && ok "request 1 (wget) got token" ||
  bad "request 1: '$r1'"
# request 2: a raw HTTP request over bash /dev/tcp on a new connection
r2=$(timeout 20 bash -c "exec 3<>/dev/tcp/$H/$P; printf 'GET /token HTTP/1.0\r\nHost: x\r\n\r\n' >&3; cat <&3" | tr -d '\r')
[ "$(printf '%s\n' "$r2" | tail -n1)" = "$token" ] && printf '%s\n' "$r2" | head -n1 | grep -q ' 200 ' &&
  ok "request 2 (/dev/tcp) got HTTP 200 + token" || bad "request 2: '$r2'"
# requests 3+4: two connections open at the same time (clients keep a watch open while they make calls)
if timeout 20 bash -c "
    exec 3<>/dev/tcp/$H/$P 4<>/dev/tcp/$H/$P
    printf 'GET /token HTTP/1.0\r\n\r\n' >&4; printf 'GET /token HTTP/1.0\r\n\r\n' >&3
    a=\$(cat <&3 | tail -n1); b=\$(cat <&4 | tail -n1); [ \"\$a\" = '$token' ] && [ \"\$b\" = '$token' ]"; then
  ok "two concurrent connections"; else bad "two concurrent connections"; fi
# JSON through jq
kind=$(timeout 20 wget -qO- "http://$A/obj.json" | jq -r '.kind + "/" + .metadata.name')
[ "$kind" = "Pod/p1" ] && ok "JSON via jq: $kind" || bad "JSON via jq: '$kind'"
# a 2 MiB binary body arrives intact
sum=$(timeout 60 wget -qO- "http://$A/blob" | sha256sum | cut -d' ' -f1)
[ "$sum" = "$blobsum" ] && ok "2 MiB body intact" || bad "2 MiB body: $sum"
# restrict=on: the slirp host address must not reach the host's loopback (without restrict it would)
if timeout 10 wget -qO- "http://10.0.2.2:$port/token" >/dev/null 2>&1; then bad "10.0.2.2:$port reachable despite restrict=on"
else ok "host not reachable via 10.0.2.2 (restrict=on)"; fi

echo "=== guestfwd checks done, failures: $fails"
exit $fails
