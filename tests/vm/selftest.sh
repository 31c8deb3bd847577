#!/bin/bash
# tests/vm/selftest.sh — host-side self test of the VM kit: setup.sh, then two VM runs:
#   1. ipvlan-smoke.sh (ipvlan l2/l3/l3s on dummy and veth masters, between namespaces);
#   2. guestfwd-check.sh with VM_APISERVER_PORT pointing at a throwaway HTTP server on 127.0.0.1
#      (python3 -m http.server, started and stopped here), proving 10.0.2.100:6443 in the guest
#      reaches host loopback over several connections.
# Exits non-zero on any failure. Prints the time of each step.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d); srv=
cleanup() { [ -n "$srv" ] && kill "$srv" 2>/dev/null && wait "$srv" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail=0
step() { local name=$1; shift; local t0=$SECONDS rc=0; "$@" || rc=$?
         echo "selftest: $name: rc=$rc, $((SECONDS - t0)) s"; [ $rc -eq 0 ] || fail=1; return 0; }

step setup bash "$here/setup.sh"

smoke() {
  bash "$here/run-in-vm.sh" "$here/ipvlan-smoke.sh" | tee "$work/smoke.out"
  [ "${PIPESTATUS[0]}" -eq 0 ] && [ "$(grep -c '^=== PASS' "$work/smoke.out")" -eq 4 ]
}
step ipvlan-smoke smoke

guestfwd() {
  mkdir "$work/www"
  token=token-$RANDOM-$RANDOM-$$; echo "$token" > "$work/www/token"
  echo '{"kind":"Pod","metadata":{"name":"p1"}}' > "$work/www/obj.json"
  head -c 2097152 /dev/urandom > "$work/www/blob"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  python3 -m http.server --bind 127.0.0.1 --directory "$work/www" "$port" > "$work/http.log" 2>&1 & srv=$!
  for _ in $(seq 50); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null && break; sleep 0.2; done
  printf '%s\n' "$token" "$(sha256sum < "$work/www/blob" | cut -d' ' -f1)" "$(date +%s)" "$port" > "$work/expected"
  local rc=0
  VM_APISERVER_PORT=$port bash "$here/run-in-vm.sh" "$here/guestfwd-check.sh" "$work/expected" || rc=$?
  kill "$srv"; wait "$srv" 2>/dev/null || true; srv=
  echo "selftest: host server saw $(grep -c '"GET ' "$work/http.log") requests"
  return $rc
}
step guestfwd guestfwd

[ $fail -eq 0 ] && echo "selftest: PASS" || echo "selftest: FAIL"
exit $fail
