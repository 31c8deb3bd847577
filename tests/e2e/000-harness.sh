#!/usr/bin/env bash
# tests/e2e/000-harness.sh — the test harness checks itself before anything relies on it:
# tests/cluster/smoke.sh (CRD schemas accept whereabouts' and Multus' objects, the wasmcni
# identity's RBAC allows exactly what it needs) and tests/vm/selftest.sh (ipvlan l2/l3/l3s in the
# kernel VM, and the restricted guestfwd to a loopback server). Each of their checks is reported.
source "$(dirname "$0")/lib.sh"

bash "$REPO/tests/cluster/smoke.sh" > "$WORK/smoke.out" 2>&1
sed -n -e 's/^ok   - /PASS cluster-smoke: /p' -e 's/^FAIL - /FAIL cluster-smoke: /p' "$WORK/smoke.out" | tee -a "$E2E_RESULTS" >&2
grep -q '^ok   - ' "$WORK/smoke.out" || fail "cluster smoke test ran" "$(tail -5 "$WORK/smoke.out")"

if bash "$REPO/tests/vm/selftest.sh" > "$WORK/vm.out" 2>&1; then
    pass "kernel VM self-test (ipvlan l2/l3/l3s, restricted guestfwd)"
else
    fail "kernel VM self-test" "$(tail -n 15 "$WORK/vm.out")"
fi
