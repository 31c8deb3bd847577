#!/bin/sh
# tests/vm/ipvlan-smoke.sh — ipvlan smoke test, meant to run as root inside the VM (never on the host):
#   bash tests/vm/run-in-vm.sh tests/vm/ipvlan-smoke.sh   (four "=== PASS" lines, exit 0)
# Two namespaces joined by ipvlan l2/l3/l3s on a dummy master and l2 on a veth master, pinging each other.
echo "kernel: $(uname -r)"
fails=0
run() {  # run <master-type> <ipvlan-mode>
  mt=$1 mode=$2
  ip netns del ns1 2>/dev/null; ip netns del ns2 2>/dev/null; ip link del master0 2>/dev/null
  if [ "$mt" = veth ]; then ip link add master0 type veth peer name master0p && ip link set master0p up
  else ip link add master0 type dummy; fi
  ip link set master0 up
  ip netns add ns1 && ip netns add ns2 &&
  ip link add link master0 name ipv1 type ipvlan mode "$mode" &&
  ip link add link master0 name ipv2 type ipvlan mode "$mode" &&
  ip link set ipv1 netns ns1 && ip link set ipv2 netns ns2 &&
  ip -n ns1 addr add 10.99.0.1/24 dev ipv1 && ip -n ns1 link set ipv1 up && ip -n ns1 link set lo up &&
  ip -n ns2 addr add 10.99.0.2/24 dev ipv2 && ip -n ns2 link set ipv2 up && ip -n ns2 link set lo up &&
  ip -n ns1 -d link show ipv1 | grep -o "ipvlan.*mode [a-z0-9]*" &&
  ip netns exec ns1 ping -c 3 -W 2 10.99.0.2 &&
  ip netns exec ns2 ping -c 3 -W 2 10.99.0.1
  if [ $? -eq 0 ]; then echo "=== PASS ipvlan $mode (master: $mt)"; else echo "=== FAIL ipvlan $mode (master: $mt)"; fails=$((fails+1)); fi
  ip netns del ns1; ip netns del ns2; ip link del master0
}
run dummy l2
run dummy l3
run dummy l3s
run veth l2
echo "=== ipvlan tests done, failures: $fails"
exit $fails
