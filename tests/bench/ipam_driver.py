#!/usr/bin/env python3
"""tests/bench/ipam_driver.py — the timing half of tests/bench/ipam.sh (Python stdlib only).

Execs each IPAM plugin as a main plugin execs it (one fresh process per call, CNI_* environment,
the network config on stdin) and times every call from spawn to exit with a monotonic clock.
Per run, for each tool in alternating order:
  burst: N ADDs of distinct pods at P-way concurrency on an empty /16, then their DELs at the
         same concurrency; allocations/s over the whole burst, p50/p99 per ADD, failures,
         duplicate addresses among the successes, and what the DELs left (pool entries, ORIPs);
  taken: K sequential ADD+DEL pairs on a /16 whose IPPool already holds T entries.
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
    # name: (its /16, the range's IPPool name)
    "wasmcni": "10.62.0.0/16",
    "whereabouts": "10.61.0.0/16",
}


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

    def conf(self, tool, cidr):
        return json.dumps({
            "cniVersion": "1.0.0", "name": "bench-ipam", "type": "macvlan", "master": "bench0",
            "ipam": {"type": "whereabouts", "range": cidr,
                     "configuration_path": "%s/%s/flat.conf" % (self.a.work, tool)},
        }).encode()

    def call(self, tool, command, cidr, pod, cid):
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": self.a.netns,
            "CNI_IFNAME": "net1", "CNI_PATH": "%s/%s" % (self.a.work, tool),
            "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=%s;"
                        "K8S_POD_INFRA_CONTAINER_ID=%s" % (pod, cid),
        }
        t0 = time.monotonic_ns()
        p = subprocess.run(["%s/%s/whereabouts" % (self.a.work, tool)], input=self.conf(tool, cidr),
                           env=env, capture_output=True, timeout=300)
        ns = time.monotonic_ns() - t0
        return ns, p.returncode, p.stdout

    def kubectl_json(self, *args):
        p = subprocess.run([self.a.kubectl, *args, "-o", "json"], capture_output=True)
        return json.loads(p.stdout) if p.returncode == 0 and p.stdout else None

    def leftovers(self, cidr):
        pool = self.kubectl_json("-n", "kube-system", "get", "ippools.whereabouts.cni.cncf.io",
                                 pool_name(cidr))
        entries = len(((pool or {}).get("spec") or {}).get("allocations") or {})
        prefix = cidr.split(".0.0/")[0] + "."
        orips = self.kubectl_json("-n", "kube-system", "get",
                                  "overlappingrangeipreservations.whereabouts.cni.cncf.io")
        n = sum(1 for o in (orips or {}).get("items", []) if o["metadata"]["name"].startswith(prefix))
        return entries, n

    def clean(self, cidr):
        prefix = cidr.split(".0.0/")[0] + "."
        subprocess.run([self.a.kubectl, "-n", "kube-system", "delete", "--ignore-not-found",
                        "ippools.whereabouts.cni.cncf.io", pool_name(cidr)], capture_output=True)
        orips = self.kubectl_json("-n", "kube-system", "get",
                                  "overlappingrangeipreservations.whereabouts.cni.cncf.io") or {}
        names = [o["metadata"]["name"] for o in orips.get("items", [])
                 if o["metadata"]["name"].startswith(prefix)]
        for i in range(0, len(names), 200):
            subprocess.run([self.a.kubectl, "-n", "kube-system", "delete",
                            "overlappingrangeipreservations.whereabouts.cni.cncf.io", *names[i:i + 200]],
                           capture_output=True)

    def burst(self, tool, run):
        cidr = TOOLS[tool]
        self.clean(cidr)
        pods = ["b%d-%s-%d" % (run, tool[:2], i) for i in range(self.a.allocs)]
        cid = {p: hashlib.sha256(p.encode()).hexdigest() for p in pods}
        t0 = time.monotonic()
        with cf.ThreadPoolExecutor(self.a.parallel) as ex:
            adds = dict(zip(pods, ex.map(lambda p: self.call(tool, "ADD", cidr, p, cid[p]), pods)))
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
            dels = list(ex.map(lambda p: self.call(tool, "DEL", cidr, p, cid[p]), list(ok)))
        entries, orips = self.leftovers(cidr)
        self.clean(cidr)
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
        """An IPPool holding `taken` whereabouts-shaped entries (offsets 1..taken)."""
        cidr = TOOLS[tool]
        self.clean(cidr)
        alloc = {str(o): {"id": hashlib.sha256(b"x%d" % o).hexdigest(),
                          "podref": "default/taken-%d" % o, "ifname": "net1"}
                 for o in range(1, taken + 1)}
        pool = {"apiVersion": "whereabouts.cni.cncf.io/v1alpha1", "kind": "IPPool",
                "metadata": {"name": pool_name(cidr), "namespace": "kube-system"},
                "spec": {"range": cidr, "allocations": alloc}}
        p = subprocess.run([self.a.kubectl, "create", "-f", "-"], input=json.dumps(pool).encode(),
                           capture_output=True)
        return p.returncode == 0, p.stderr.decode()[:200]

    def taken(self, run):
        out = {}
        order = list(TOOLS) if run % 2 == 0 else list(reversed(TOOLS))
        for tool in order:
            ok, why = self.prefill(tool, self.a.taken)
            out[tool] = {"prefill": ok, "why": why, "add": [], "del": [], "failed": 0}
        for k in range(self.a.taken_ops):
            for tool in order:
                if not out[tool]["prefill"]:
                    continue
                pod = "t%d-%s-%d" % (run, tool[:2], k)
                c = hashlib.sha256(pod.encode()).hexdigest()
                ns, rc, _ = self.call(tool, "ADD", TOOLS[tool], pod, c)
                out[tool]["add"].append(ns / 1e6)
                out[tool]["failed"] += rc != 0
                ns, rc, _ = self.call(tool, "DEL", TOOLS[tool], pod, c)
                out[tool]["del"].append(ns / 1e6)
                out[tool]["failed"] += rc != 0
        for tool in order:
            self.clean(TOOLS[tool])
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
    ap.add_argument("--taken", type=int, default=10000)
    ap.add_argument("--taken-ops", type=int, default=20)
    a = ap.parse_args()
    b = Bench(a)
    bursts = {t: [] for t in TOOLS}
    takens = []
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
        if a.taken > 0 and a.taken_ops > 0:
            takens.append(b.taken(run))

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
    if takens:
        print()
        print("| ADD, DEL with %d addresses taken (%d sequential pairs) | ADD p50 | DEL p50 | failed |"
              % (a.taken, a.taken_ops))
        print("|---|---|---|---|")
        for tool in TOOLS:
            parts = [t[tool] for t in takens]
            if not all(p["prefill"] for p in parts):
                print("| %s | pool of %d entries refused: %s | | |" % (tool, a.taken, parts[0]["why"]))
                continue
            print("| %s | %s ms | %s ms | %s |" % (
                tool, "/".join("%.1f" % pct(p["add"], 50) for p in parts),
                "/".join("%.1f" % pct(p["del"], 50) for p in parts),
                "/".join(str(p["failed"]) for p in parts)))
    print()
    print("Figures per run separated by /. Each tool on its own /16 (never meeting); "
          "the tools alternate order per run.")


if __name__ == "__main__":
    main()
