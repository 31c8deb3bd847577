#!/usr/bin/env python3
"""tests/bench/ipam_driver.py — the timing half of tests/bench/ipam.sh (Python stdlib only).

Execs each IPAM plugin as a main plugin execs it (one fresh process per call, CNI_* environment,
the network config on stdin) and times every call from spawn to exit with a monotonic clock.
Four tools: whereabouts, wasmcni on whereabouts' one IPPool per range, wasmcni with the range in
per-node blocks (`"block_size": 26`), and the blocks through a node daemon per node name (thick
mode: the exec'd shim forwards each call to `wasmcni daemon`); one binary and identity for the
wasmcni rows.
Calls come from 10 node names (NODENAME, which whereabouts reads too and uses for nothing here).
Per run, for each tool in alternating order:
  burst: N ADDs of distinct pods at P-way concurrency on an empty /16, then their DELs at the
         same concurrency; allocations/s over the whole burst, p50/p99 per ADD, failures,
         duplicate addresses among the successes, and what the DELs left (pool entries, ORIPs);
  taken: K sequential ADD+DEL pairs on a /16 that already holds T entries (in its IPPool, or in
         full blocks claimed by other nodes).
Prints a Markdown table and nothing that asserts a time: a benchmark, not a test.
"""

import argparse
import concurrent.futures as cf
import hashlib
import json
import os
import platform
import subprocess
import sys
import time

TOOLS = {
    # name: (the plugin's directory under --work, its /16, block_size or None)
    "wasmcni": ("wasmcni", "10.62.0.0/16", None),
    "wasmcni-blocks": ("wasmcni", "10.63.0.0/16", 26),
    "whereabouts": ("whereabouts", "10.61.0.0/16", None),
    # The blocks again, each call forwarded by the exec'd shim to its node's `wasmcni daemon`.
    "wasmcni-daemon": ("wasmcni", "10.64.0.0/16", 26),
}
# The tools whose calls go to a node daemon (one per node name, started by this driver).
DAEMON = {"wasmcni-daemon"}
NODES = 10
BLOCK_LABEL = "wasmcni.io/pool"


def pct(values, p):
    s = sorted(values)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, -(-p * len(s) // 100) - 1))
    return s[k]


def pool_name(cidr):
    return cidr.replace("/", "-")


class Bench:
    def __init__(self, a):
        self.a = a
        self.daemons = {}

    def start_daemons(self, nodes):
        """One `wasmcni daemon` per node name, as a DaemonSet would run them (NODENAME set)."""
        for n in nodes:
            d = "%s/daemons/%s" % (self.a.work, n)
            os.makedirs(d, mode=0o700, exist_ok=True)
            sock = d + "/daemon.sock"
            env = {"NODENAME": n, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "WASMCNI_LOG": os.environ.get("BENCH_DAEMON_LOG", "warn")}
            log = open(d + "/log", "ab")
            p = subprocess.Popen(["%s/wasmcni/whereabouts" % self.a.work, "daemon", "--socket", sock],
                                 env=env, stdout=log, stderr=log)
            self.daemons[n] = (p, sock)
        for n, (p, sock) in self.daemons.items():
            for _ in range(200):
                if os.path.exists(sock) or p.poll() is not None:
                    break
                time.sleep(0.05)
            if not os.path.exists(sock):
                sys.exit("the daemon of %s did not start (see %s/daemons/%s/log)" % (n, self.a.work, n))

    def stop_daemons(self):
        for p, _ in self.daemons.values():
            p.terminate()
        for p, _ in self.daemons.values():
            p.wait(timeout=60)
        # At info level the daemons log each lost write and each call served: the count of
        # conditional writes that lost to a record made first.
        if self.daemons and os.environ.get("BENCH_DAEMON_LOG", "warn") in ("info", "debug", "trace"):
            lost = served = 0
            for n in self.daemons:
                with open("%s/daemons/%s/log" % (self.a.work, n), errors="replace") as f:
                    for line in f:
                        lost += "went to another writer" in line
                        served += "served ADD" in line
            print("daemons: %d writes lost to a record made first, in %d ADDs served" % (lost, served),
                  file=sys.stderr, flush=True)

    def conf(self, tool):
        d, cidr, block = TOOLS[tool]
        ipam = {"type": "whereabouts", "range": cidr,
                "configuration_path": "%s/%s/flat.conf" % (self.a.work, d)}
        if block:
            ipam["block_size"] = block
        return json.dumps({
            "cniVersion": "1.0.0", "name": "bench-ipam", "type": "macvlan", "master": "bench0",
            "ipam": ipam,
        }).encode()

    def call(self, tool, command, pod, cid, node):
        d = TOOLS[tool][0]
        env = {
            "NODENAME": node,
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            # Exec mode, or the node's daemon.
            "WASMCNI_DAEMON_SOCKET": self.daemons[node][1] if tool in DAEMON else "",
            "CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": self.a.netns,
            "CNI_IFNAME": "net1", "CNI_PATH": "%s/%s" % (self.a.work, d),
            "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=%s;"
                        "K8S_POD_INFRA_CONTAINER_ID=%s" % (pod, cid),
        }
        t0 = time.monotonic_ns()
        p = subprocess.run(["%s/%s/whereabouts" % (self.a.work, d)], input=self.conf(tool),
                           env=env, capture_output=True, timeout=300)
        ns = time.monotonic_ns() - t0
        return ns, p.returncode, p.stdout

    def kubectl_json(self, *args):
        p = subprocess.run([self.a.kubectl, *args, "-o", "json"], capture_output=True)
        return json.loads(p.stdout) if p.returncode == 0 and p.stdout else None

    def pools(self, tool):
        _, cidr, block = TOOLS[tool]
        if block:
            l = self.kubectl_json("-n", "kube-system", "get", "ippools.whereabouts.cni.cncf.io",
                                  "-l", "%s=%s" % (BLOCK_LABEL, pool_name(cidr)))
            return (l or {}).get("items", [])
        p = self.kubectl_json("-n", "kube-system", "get", "ippools.whereabouts.cni.cncf.io",
                              pool_name(cidr))
        return [p] if p else []

    def leftovers(self, tool):
        cidr = TOOLS[tool][1]
        entries = sum(len((p.get("spec") or {}).get("allocations") or {}) for p in self.pools(tool))
        prefix = cidr.split(".0.0/")[0] + "."
        orips = self.kubectl_json("-n", "kube-system", "get",
                                  "overlappingrangeipreservations.whereabouts.cni.cncf.io")
        n = sum(1 for o in (orips or {}).get("items", []) if o["metadata"]["name"].startswith(prefix))
        return entries, n

    def clean(self, tool):
        cidr, block = TOOLS[tool][1], TOOLS[tool][2]
        prefix = cidr.split(".0.0/")[0] + "."
        which = ["-l", "%s=%s" % (BLOCK_LABEL, pool_name(cidr))] if block else [pool_name(cidr)]
        subprocess.run([self.a.kubectl, "-n", "kube-system", "delete", "--ignore-not-found",
                        "ippools.whereabouts.cni.cncf.io", *which], capture_output=True)
        orips = self.kubectl_json("-n", "kube-system", "get",
                                  "overlappingrangeipreservations.whereabouts.cni.cncf.io") or {}
        names = [o["metadata"]["name"] for o in orips.get("items", [])
                 if o["metadata"]["name"].startswith(prefix)]
        for i in range(0, len(names), 200):
            subprocess.run([self.a.kubectl, "-n", "kube-system", "delete",
                            "overlappingrangeipreservations.whereabouts.cni.cncf.io", *names[i:i + 200]],
                           capture_output=True)

    def burst(self, tool, run):
        self.clean(tool)
        pods = ["b%d-%s-%d" % (run, tool.replace("-", "")[:4], i) for i in range(self.a.allocs)]
        cid = {p: hashlib.sha256(p.encode()).hexdigest() for p in pods}
        node = {p: "node-%d" % (i % NODES) for i, p in enumerate(pods)}
        t0 = time.monotonic()
        with cf.ThreadPoolExecutor(self.a.parallel) as ex:
            adds = dict(zip(pods, ex.map(lambda p: self.call(tool, "ADD", p, cid[p], node[p]), pods)))
        wall = time.monotonic() - t0
        ok = {p: r for p, r in adds.items() if r[1] == 0}
        errors = {}
        for p, r in adds.items():
            if r[1] != 0:
                try:
                    e = json.loads(r[2])
                    key = "code %s: %s" % (e.get("code"), e.get("msg"))
                except ValueError:
                    key = "rc %d: %s" % (r[1], r[2][:80])
                errors[key] = errors.get(key, 0) + 1
        ips = []
        for r in ok.values():
            try:
                ips += [i["address"].split("/")[0] for i in json.loads(r[2]).get("ips", [])]
            except ValueError:
                pass
        with cf.ThreadPoolExecutor(self.a.parallel) as ex:
            dels = list(ex.map(lambda p: self.call(tool, "DEL", p, cid[p], node[p]), list(ok)))
        entries, orips = self.leftovers(tool)
        self.clean(tool)
        lat = [r[0] / 1e6 for r in adds.values()]
        return {
            "ok": len(ok), "failed": len(adds) - len(ok), "errors": errors,
            "rate": len(ok) / wall, "wall": wall,
            "p50": pct(lat, 50), "p99": pct(lat, 99),
            "dup": len(ips) - len(set(ips)),
            "del_failed": sum(1 for r in dels if r[1] != 0),
            "del_p50": pct([r[0] / 1e6 for r in dels], 50),
            "left_entries": entries, "left_orips": orips,
        }

    def prefill(self, tool, taken):
        if taken == 0:
            self.clean(tool)
            return True, ""
        """`taken` whereabouts-shaped entries (offsets 1..taken): in the range's IPPool, or in
        full /26 blocks claimed by the 10 other nodes."""
        _, cidr, block = TOOLS[tool]
        self.clean(tool)

        def entry(o):
            return {"id": hashlib.sha256(b"x%d" % o).hexdigest(),
                    "podref": "default/taken-%d" % o, "ifname": "net1"}

        def ippool(name, alloc, labels=None):
            meta = {"name": name, "namespace": "kube-system"}
            if labels:
                meta["labels"] = labels
            return {"apiVersion": "whereabouts.cni.cncf.io/v1alpha1", "kind": "IPPool",
                    "metadata": meta, "spec": {"range": cidr, "allocations": alloc}}

        if block:
            size = 1 << (32 - block)
            base = cidr.split(".0.0/")[0]
            items = []
            for i in range((taken + size) // size):
                lo, hi = max(1, i * size), min(taken, i * size + size - 1)
                if lo > hi:
                    break
                name = "%s.%s.%d.%d-%d" % (pool_name(cidr), base, (i * size) >> 8, (i * size) & 255, block)
                items.append(ippool(name, {str(o): entry(o) for o in range(lo, hi + 1)},
                                    {BLOCK_LABEL: pool_name(cidr), "wasmcni.io/node": "node-%d" % (i % NODES)}))
            doc = {"apiVersion": "v1", "kind": "List", "items": items}
        else:
            doc = ippool(pool_name(cidr), {str(o): entry(o) for o in range(1, taken + 1)})
        p = subprocess.run([self.a.kubectl, "create", "-f", "-"], input=json.dumps(doc).encode(),
                           capture_output=True)
        return p.returncode == 0, " ".join(p.stderr.decode().split())[:160]

    def taken(self, run, taken):
        out = {}
        order = list(TOOLS) if run % 2 == 0 else list(reversed(TOOLS))
        for tool in order:
            ok, why = self.prefill(tool, taken)
            out[tool] = {"prefill": ok, "why": why, "add": [], "del": [], "failed": 0}
        for k in range(self.a.taken_ops):
            for tool in order:
                if not out[tool]["prefill"]:
                    continue
                pod = "t%d-%s-%d" % (run, tool.replace("-", "")[:4], k)
                c = hashlib.sha256(pod.encode()).hexdigest()
                ns, rc, _ = self.call(tool, "ADD", pod, c, "node-t")
                out[tool]["add"].append(ns / 1e6)
                out[tool]["failed"] += rc != 0
                ns, rc, _ = self.call(tool, "DEL", pod, c, "node-t")
                out[tool]["del"].append(ns / 1e6)
                out[tool]["failed"] += rc != 0
        for tool in order:
            self.clean(tool)
        return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--netns", required=True)
    ap.add_argument("--kubectl", required=True)
    ap.add_argument("--command", default="bash tests/bench/ipam.sh")
    ap.add_argument("--allocs", type=int, default=1000)
    ap.add_argument("--parallel", type=int, default=50)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--taken", default="0,10000,60000",
                    help="comma-separated counts of addresses taken before the sequential pairs")
    ap.add_argument("--taken-ops", type=int, default=20)
    ap.add_argument("--tools", default=",".join(TOOLS), help="a subset of " + ",".join(TOOLS))
    a = ap.parse_args()
    for t in list(TOOLS):
        if t not in a.tools.split(","):
            del TOOLS[t]
    b = Bench(a)
    if DAEMON & set(TOOLS):
        b.start_daemons(["node-%d" % i for i in range(NODES)] + ["node-t"])
    try:
        report(a, b)
    finally:
        b.stop_daemons()


def report(a, b):
    bursts = {t: [] for t in TOOLS}
    counts = [int(t) for t in str(a.taken).split(",") if t.strip()]
    takens = {t: [] for t in counts}
    for run in range(a.runs):
        order = list(TOOLS) if run % 2 == 0 else list(reversed(TOOLS))
        for tool in order:
            r = b.burst(tool, run)
            bursts[tool].append(r)
            print("run %d %s: %d/%d ok in %.1f s (%.1f/s), p50 %.0f ms p99 %.0f ms, %d dup, "
                  "%d DEL failed, left %d entries %d ORIPs; errors %s"
                  % (run, tool, r["ok"], a.allocs, r["wall"], r["rate"], r["p50"], r["p99"], r["dup"],
                     r["del_failed"], r["left_entries"], r["left_orips"], r["errors"]),
                  file=sys.stderr, flush=True)
        if a.taken_ops > 0:
            for t in counts:
                takens[t].append(b.taken(run, t))

    print()
    print("`%s` — %s, %d cores, load %.1f at the end" % (
        a.command, platform.machine(), os.cpu_count(), os.getloadavg()[0]))
    print()
    print("| %d ADDs at %d-way on one /16 (then their DELs) | allocations/s | ADD p50 | ADD p99 "
          "| failed ADDs | duplicates | failed DELs | left after DEL (entries/ORIPs) |" % (a.allocs, a.parallel))
    print("|---|---|---|---|---|---|---|---|")
    for tool in TOOLS:
        rs = bursts[tool]
        if not rs:
            continue
        f = lambda k: "/".join("%.0f" % r[k] if r[k] >= 10 else "%.1f" % r[k] for r in rs)
        s = lambda k: "/".join(str(r[k]) for r in rs)
        print("| %s | %s | %s ms | %s ms | %s | %s | %s | %s |" % (
            tool, f("rate"), f("p50"), f("p99"), s("failed"), s("dup"), s("del_failed"),
            "/".join("%d/%d" % (r["left_entries"], r["left_orips"]) for r in rs)))
    if any(takens.values()):
        print()
        print("| %d sequential ADD + DEL pairs, with N addresses taken | N | ADD p50 | DEL p50 | failed |"
              % a.taken_ops)
        print("|---|---|---|---|---|")
        for tool in TOOLS:
            for t in counts:
                parts = [x[tool] for x in takens[t]]
                if not parts:
                    continue
                if not all(p["prefill"] for p in parts):
                    print("| %s | %d | refused: %s | | |" % (tool, t, parts[0]["why"]))
                    continue
                print("| %s | %d | %s ms | %s ms | %s |" % (
                    tool, t, "/".join("%.1f" % pct(p["add"], 50) for p in parts),
                    "/".join("%.1f" % pct(p["del"], 50) for p in parts),
                    "/".join(str(p["failed"]) for p in parts)))
    print()
    print("Figures per run separated by /. Each tool on its own /16 (never meeting); "
          "the tools alternate order per run.")


if __name__ == "__main__":
    main()
