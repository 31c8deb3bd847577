#!/usr/bin/env python3
"""tests/bench/cni_driver.py — the timing half of tests/bench/cni.sh (Python stdlib only).

Execs CNI plugins the way a runtime does — one fresh process per call, the CNI_* environment,
the network config on stdin — and times each call with a monotonic ns clock from spawn to exit
(posix_spawn + waitpid: no shell, no fork of a big interpreter image on the timed path). The
cases are interleaved round-robin in one run, the starting case rotating every iteration, so
drift on the machine hits every row alike. Prints a Markdown table, the run's spread, and
nothing that asserts a time: it is a benchmark, not a test.

Everything it needs (paths, netns names, pods, configs) comes from --setup, a JSON file written
by cni.sh inside the bench's node network namespace.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time


def pct(values, p):
    """Nearest-rank percentile (p in 0..100)."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, -(-p * len(s) // 100) - 1))
    return s[k]


class Runner:
    def __init__(self, setup, extra_env=None, wrap=None):
        self.s = setup
        self.extra_env = extra_env or {}
        self.wrap = wrap          # profiling only: command -> argv prefix for wasmcni (strace …)
        self.tmp = setup["work"] + "/io"
        os.makedirs(self.tmp, exist_ok=True)
        self.base_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}

    def exec_plugin(self, plugin, command, conf, netns="", ifname="eth0", cid="", pod=None,
                    daemon=False):
        """One CNI call: returns (ns, exit status, stdout bytes, stderr bytes). daemon: wasmcni
        forwards the call to the node daemon (thick mode); otherwise it runs it itself."""
        env = dict(self.base_env)
        env.update({
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_PATH": self.s["cni_path"],
        })
        if plugin == "wasmcni":
            env["WASMCNI_DAEMON_SOCKET"] = self.s["daemon_socket"] if daemon else ""
            env.update(self.extra_env)
        env["CNI_ARGS"] = ""      # libcni sets every CNI_* variable, empty when unused
        if pod:
            # The pod's real UID, as the kubelet passes it (Multus refuses a UID the API server
            # does not have for that pod: a recreated namesake).
            uid = self.s.get("uids", {}).get(pod, "uid-" + pod)
            env["CNI_ARGS"] = ("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=%s;"
                               "K8S_POD_INFRA_CONTAINER_ID=%s;K8S_POD_UID=%s" % (pod, cid, uid))
        stdin_p, out_p, err_p = self.tmp + "/stdin", self.tmp + "/stdout", self.tmp + "/stderr"
        with open(stdin_p, "wb") as f:
            f.write(json.dumps(conf).encode())
        path = self.s["cni_path"] + "/" + plugin
        wr = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, stdin_p, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, out_p, wr, 0o600),
            (os.POSIX_SPAWN_OPEN, 2, err_p, wr, 0o600),
        ]
        argv = [path]
        if self.wrap and plugin == "wasmcni":
            argv = self.wrap(command) + [path]
        t0 = time.monotonic_ns()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
        _, status = os.waitpid(pid, 0)
        t1 = time.monotonic_ns()
        with open(out_p, "rb") as f:
            out = f.read()
        with open(err_p, "rb") as f:
            err = f.read()
        return t1 - t0, os.waitstatus_to_exitcode(status), out, err

    def call(self, plugin, command, conf, **kw):
        ns, rc, out, err = self.exec_plugin(plugin, command, conf, **kw)
        if rc != 0:
            raise CallFailed(plugin, command, rc, out, err, kw)
        return ns, out

    def undo(self, plugin, ifaces, netns, cid, pod, conf_of, daemon=False):
        """Untimed DELs (last interface first) after a failed call, errors ignored: what a
        runtime does before it retries."""
        for ifname, conflist in reversed(ifaces):
            self.exec_plugin(plugin, "DEL", conf_of(conflist), netns=netns, ifname=ifname,
                             cid=cid, pod=pod, daemon=daemon)


class CallFailed(Exception):
    def __init__(self, plugin, command, rc, out, err, kw):
        try:
            res = json.loads(out)
            why = "code %s: %s (%s)" % (res.get("code"), res.get("msg"), res.get("details"))
        except ValueError:
            why = "exit %d: %s" % (rc, (out + err).decode(errors="replace")[:300])
        super().__init__("%s %s %s: %s" % (plugin, command, kw.get("cid", ""), why))
        self.what = "%s %s, %s" % (plugin, command, why)


def libcni_conf(conflist, plugin_index=0, runtime_config=None, prev_result=None):
    """The stdin libcni builds for plugin `plugin_index` of a conflist: the plugin's own keys plus
    the list's name and cniVersion, runtimeConfig for the capabilities it declares, and (DEL,
    CHECK) the cached ADD result as prevResult."""
    conf = dict(conflist["plugins"][plugin_index])
    conf["name"] = conflist["name"]
    conf["cniVersion"] = conflist["cniVersion"]
    if runtime_config is not None:
        conf["runtimeConfig"] = runtime_config
    if prev_result is not None:
        conf["prevResult"] = prev_result
    return conf


class Case:
    """One timed unit, repeated every iteration: ADD then DEL of one pod (or one VERSION call)."""

    def __init__(self, key, run, undo=None):
        self.key, self.run, self.undo = key, run, undo
        self.times = {}     # op -> [ns]
        self.iters = {}     # op -> [iteration of each sample], for paired ratios
        self.failures = []  # (iteration, what): reported, never timed

    def once(self, r, i, record):
        try:
            times = self.run(r, i)
        except CallFailed as e:
            print("cni_driver: iteration %d, %s failed: %s" % (i, self.key, e), file=sys.stderr)
            self.failures.append((i, e.what))
            if self.undo:
                self.undo(r, i)
            return
        for op, ns in times.items():
            if record:
                self.times.setdefault(op, []).append(ns)
                self.iters.setdefault(op, []).append(i)


def build_cases(s):
    ref_list = s["ref_conflist"]             # macvlan + host-local: the cluster network
    ref_net1 = s["ref_net1_conflist"]        # the same shape on net1 (own range)
    wasm_list = s["wasmcni_conflist"]
    cases = []

    def version(plugin, conflist):
        def run(r, i):
            ns, out = r.call(plugin, "VERSION", {"cniVersion": conflist["cniVersion"]}, ifname="")
            json.loads(out)
            return {"VERSION": ns}
        return run

    cases.append(Case("ref.version", version("macvlan", ref_list)))
    cases.append(Case("wasmcni.version", version("wasmcni", wasm_list)))

    def reference(ifaces, netns, pod):
        """The reference plugin exec'd directly, once per interface, as libcni execs the one
        plugin of a one-plugin conflist; DEL in reverse with the cached result as prevResult."""
        def run(r, i):
            cid = "bench-%s-%d" % (pod, i)
            add_ns, results = 0, []
            for ifname, conflist in ifaces:
                ns, out = r.call("macvlan", "ADD", libcni_conf(conflist), netns=netns,
                                 ifname=ifname, cid=cid, pod=pod)
                add_ns += ns
                results.append(json.loads(out))
            del_ns = 0
            for (ifname, conflist), res in reversed(list(zip(ifaces, results))):
                ns, _ = r.call("macvlan", "DEL", libcni_conf(conflist, prev_result=res),
                               netns=netns, ifname=ifname, cid=cid, pod=pod)
                del_ns += ns
            return {"ADD": add_ns, "DEL": del_ns}

        def undo(r, i):
            r.undo("macvlan", ifaces, netns, "bench-%s-%d" % (pod, i), pod, libcni_conf)
        return run, undo

    def wasmcni(netns, pod, annotations, daemon=False):
        """wasmcni, first and only plugin of the node's conflist. annotations: the pod's
        annotations passed by the runtime (capability io.kubernetes.cri.pod-annotations), or
        None: the runtime does not pass them and wasmcni GETs the pod. daemon: thick mode."""
        def run(r, i):
            cid = "bench-%s-%d" % (pod, i)
            rc = None if annotations is None else {"io.kubernetes.cri.pod-annotations": annotations}
            ns_add, out = r.call("wasmcni", "ADD", libcni_conf(wasm_list, runtime_config=rc),
                                 netns=netns, cid=cid, pod=pod, daemon=daemon)
            res = json.loads(out)
            ns_del, _ = r.call("wasmcni", "DEL",
                               libcni_conf(wasm_list, runtime_config=rc, prev_result=res),
                               netns=netns, cid=cid, pod=pod, daemon=daemon)
            return {"ADD": ns_add, "DEL": ns_del}

        def undo(r, i):
            rc = None if annotations is None else {"io.kubernetes.cri.pod-annotations": annotations}
            r.undo("wasmcni", [("eth0", wasm_list)], netns, "bench-%s-%d" % (pod, i), pod,
                   lambda c: libcni_conf(c, runtime_config=rc), daemon=daemon)
        return run, undo

    p = s["pods"]
    cases.append(Case("ref.one", *reference([("eth0", ref_list)], s["netns"]["ref_one"], p["ref_one"])))
    cases.append(Case("wasmcni.one.rt", *wasmcni(s["netns"]["w_one_rt"], p["w_one_rt"], {})))
    cases.append(Case("wasmcni.one.get", *wasmcni(s["netns"]["w_one_get"], p["w_one_get"], None)))
    cases.append(Case("ref.two", *reference([("eth0", ref_list), ("net1", ref_net1)],
                                           s["netns"]["ref_two"], p["ref_two"])))
    cases.append(Case("wasmcni.two.rt", *wasmcni(s["netns"]["w_two_rt"], p["w_two_rt"],
                                                 {"k8s.v1.cni.cncf.io/networks": s["extra_nad"]})))
    cases.append(Case("wasmcni.two.get", *wasmcni(s["netns"]["w_two_get"], p["w_two_get"], None)))
    # The same calls through the node daemon (the exec'd wasmcni forwards them).
    cases.append(Case("daemon.one.rt", *wasmcni(s["netns"]["d_one_rt"], p["d_one_rt"], {}, True)))
    cases.append(Case("daemon.two.rt", *wasmcni(s["netns"]["d_two_rt"], p["d_two_rt"],
                                                {"k8s.v1.cni.cncf.io/networks": s["extra_nad"]},
                                                True)))
    cases.append(Case("daemon.two.get", *wasmcni(s["netns"]["d_two_get"], p["d_two_get"], None,
                                                 True)))

    def multus(netns, pod):
        """Multus thin v4.2.4, first and only plugin of its conflist (the cluster network inline
        in delegates), exec'd as libcni execs it; it GETs the pod and the NAD and execs macvlan +
        host-local, then macvlan + whereabouts, itself."""
        mlist = s["multus_conflist"]

        def run(r, i):
            cid = "bench-%s-%d" % (pod, i)
            ns_add, out = r.call("multus", "ADD", libcni_conf(mlist), netns=netns, cid=cid, pod=pod)
            res = json.loads(out)
            ns_del, _ = r.call("multus", "DEL", libcni_conf(mlist, prev_result=res),
                               netns=netns, cid=cid, pod=pod)
            return {"ADD": ns_add, "DEL": ns_del}

        def undo(r, i):
            r.undo("multus", [("eth0", mlist)], netns, "bench-%s-%d" % (pod, i), pod, libcni_conf)
        return run, undo

    cases.append(Case("multus.two", *multus(s["netns"]["multus_two"], p["multus_two"])))

    def floor(r, i):
        """The harness' own cost: spawn + exit of a trivial static-ish program."""
        t0 = time.monotonic_ns()
        pid = os.posix_spawn("/bin/true", ["/bin/true"], r.base_env)
        os.waitpid(pid, 0)
        return {"floor": time.monotonic_ns() - t0}
    cases.append(Case("floor", floor))
    return cases


def profile(s, out):
    """One more ADD and DEL of every wasmcni case, untimed: with WASMCNI_LOG=trace (the host's
    own timeline, every API request), under `strace -f -c` (syscall time), `strace -f -ttt -T`
    (a timeline: exec, connects, the exec'd IPAM plugin) and `perf stat` (CPU time vs wall)."""
    os.makedirs(out, exist_ok=True)
    for c in build_cases(s):
        if not c.key.startswith("wasmcni.") or c.key == "wasmcni.version":
            continue
        log = "%s/%s.log" % (out, c.key)
        c.once(Runner(s, {"WASMCNI_LOG": "trace", "WASMCNI_LOG_FILE": log}), 1000000, False)
        strace, perf = "/usr/bin/strace", "/usr/bin/perf"
        if os.path.exists(strace):
            c.once(Runner(s, wrap=lambda op, k=c.key: [strace, "-f", "-c", "-o",
                                                       "%s/%s.%s.strace" % (out, k, op)]), 1000001, False)
            c.once(Runner(s, wrap=lambda op, k=c.key: [strace, "-f", "-ttt", "-T", "-o",
                                                       "%s/%s.%s.timeline" % (out, k, op)]), 1000002, False)
        if os.path.exists(perf):
            c.once(Runner(s, wrap=lambda op, k=c.key: [perf, "stat", "-o",
                                                       "%s/%s.%s.perfstat" % (out, k, op), "--"]), 1000003, False)


def run_once(s, n, warmup):
    """One run: every case once per iteration, the starting case rotating. Returns the samples
    per case and op, and the failed calls (a failed case is left out of that iteration, undone
    as a runtime would, and listed; more than 5 % failures end the run)."""
    r = Runner(s)
    cases = build_cases(s)
    for i in range(warmup + n):
        k = i % len(cases)
        for c in cases[k:] + cases[:k]:
            c.once(r, i, record=i >= warmup)
        failed = sum(len(c.failures) for c in cases)
        if failed > max(3, (warmup + n) // 20):
            sys.exit("cni_driver: %d calls failed, giving up:\n%s" % (failed, "\n".join(
                "  %s iteration %d: %s" % (c.key, j, w) for c in cases for j, w in c.failures)))
    res = {c.key: c.times for c in cases}
    res["iterations"] = {c.key: c.iters for c in cases}
    return res, [(c.key, j, w) for c in cases for j, w in c.failures]


ROWS = [
    # label, reference case, wasmcni case, op
    ("VERSION", "ref.version", "wasmcni.version", "VERSION"),
    ("ADD: eth0 = macvlan + host-local; wasmcni gets the pod's annotations from the runtime "
     "(no pod GET)", "ref.one", "wasmcni.one.rt", "ADD"),
    ("DEL: the same", "ref.one", "wasmcni.one.rt", "DEL"),
    ("ADD: the same; wasmcni GETs the pod", "ref.one", "wasmcni.one.get", "ADD"),
    ("DEL: the same", "ref.one", "wasmcni.one.get", "DEL"),
    ("ADD: eth0 as above + net1 macvlan (reference: exec'd once per interface, host-local; "
     "wasmcni: NAD GET, whereabouts IPPool CAS), annotations from the runtime",
     "ref.two", "wasmcni.two.rt", "ADD"),
    ("DEL: the same", "ref.two", "wasmcni.two.rt", "DEL"),
    ("ADD: the same; wasmcni GETs the pod", "ref.two", "wasmcni.two.get", "ADD"),
    ("DEL: the same", "ref.two", "wasmcni.two.get", "DEL"),
    ("thick mode — ADD: eth0, annotations from the runtime, through the node daemon",
     "ref.one", "daemon.one.rt", "ADD"),
    ("DEL: the same", "ref.one", "daemon.one.rt", "DEL"),
    ("thick mode — ADD: eth0 + net1, annotations from the runtime, through the node daemon",
     "ref.two", "daemon.two.rt", "ADD"),
    ("DEL: the same", "ref.two", "daemon.two.rt", "DEL"),
    ("thick mode — ADD: eth0 + net1, the daemon GETs the pod", "ref.two", "daemon.two.get", "ADD"),
    ("DEL: the same", "ref.two", "daemon.two.get", "DEL"),
    ("vs the chain wasmcni replaces (reference column: Multus thin v4.2.4 exec'd, macvlan + "
     "host-local, macvlan + whereabouts v0.9.2, each GETting what it reads) — ADD: eth0 + net1, "
     "wasmcni exec mode GETs the pod", "multus.two", "wasmcni.two.get", "ADD"),
    ("DEL: the same", "multus.two", "wasmcni.two.get", "DEL"),
    ("the same — ADD: eth0 + net1, thick mode (the daemon GETs the pod)",
     "multus.two", "daemon.two.get", "ADD"),
    ("DEL: the same", "multus.two", "daemon.two.get", "DEL"),
]


def ms(ns):
    return ns / 1e6


def table(res):
    out = ["| operation (exec mode unless thick) | reference p50 / p90 / p99 | wasmcni p50 / p90 / p99 | ratio (p50) |",
           "|---|---|---|---|"]
    for label, ref, wasm, op in ROWS:
        a, b = res[ref][op], res[wasm][op]
        out.append("| %s | %.2f / %.2f / %.2f ms | %.2f / %.2f / %.2f ms | %.2f× |" % (
            label, ms(statistics.median(a)), ms(pct(a, 90)), ms(pct(a, 99)),
            ms(statistics.median(b)), ms(pct(b, 90)), ms(pct(b, 99)),
            statistics.median(b) / statistics.median(a)))
    out.append("| ipvlan ADD/DEL | not measured: this kernel has no ipvlan, and in the kernel VM "
               "(qemu TCG) it would time the emulator | — | — |")
    return "\n".join(out)


def medians(res):
    m = {}
    for label, ref, wasm, op in ROWS:
        m[(ref, op)] = statistics.median(res[ref][op])
        m[(wasm, op)] = statistics.median(res[wasm][op])
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--setup", required=True)
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--raw", help="write every sample (ns) of every run here as JSON")
    ap.add_argument("--command", default="")
    ap.add_argument("--profile", help="after the runs, trace and strace one ADD/DEL per wasmcni case into this dir")
    a = ap.parse_args()
    with open(a.setup) as f:
        s = json.load(f)

    runs, loads, failures = [], [], []
    for k in range(a.runs):
        load0 = os.getloadavg()
        t0 = time.monotonic()
        res, failed = run_once(s, a.n, a.warmup)
        runs.append(res)
        failures.append(failed)
        loads.append((load0[0], os.getloadavg()[0]))
        print("run %d/%d: %.1f s, loadavg before %.2f after %.2f" % (
            k + 1, a.runs, time.monotonic() - t0, load0[0], os.getloadavg()[0]), file=sys.stderr)
        if a.runs > 1:
            print("\n### run %d of %d\n" % (k + 1, a.runs))
            print(table(res))
    if a.raw:
        with open(a.raw, "w") as f:
            json.dump(runs, f)

    if a.profile:
        profile(s, a.profile)
        print("profile: WASMCNI_LOG=trace logs and strace -f -c summaries in %s" % a.profile, file=sys.stderr)

    last = runs[-1]
    if a.runs == 1:
        print(table(last))
    print()
    print("Machine: %d cores (nproc), Linux %s, %s; N = %d per row after %d warm-up iterations, "
          "all cases interleaved round-robin in one run; times are spawn→exit of each exec'd "
          "process (monotonic ns); harness floor (posix_spawn + wait of /bin/true): median %.2f ms." % (
              os.cpu_count(), platform.release(), s.get("machine", ""), a.n, a.warmup,
              ms(statistics.median(last["floor"]["floor"]))))
    print("1-min load average before → after each run: %s (%d cores; anything above the "
          "bench's own ~1 is other work on the machine)." % (
              ", ".join("%.2f → %.2f" % l for l in loads), os.cpu_count()))
    if a.command:
        print("Command: `%s`" % a.command)
    for k, failed in enumerate(failures):
        if failed:
            print("\nRun %d: %d failed call(s), undone, left out of the samples:" % (k + 1, len(failed)))
            for key, j, w in failed:
                print("- %s, iteration %d: %s" % (key, j, w))
    if len(runs) > 1:
        print("\nSpread between consecutive runs (median of run k+1 vs run k, per case):\n")
        print("| case | op | " + " | ".join("run %d" % (k + 1) for k in range(len(runs))) + " | max spread |")
        print("|---|---|" + "---|" * len(runs) + "---|")
        ms_ = [medians(r) for r in runs]
        worst = 0.0
        for key in ms_[0]:
            vals = [m[key] for m in ms_]
            spread = (max(vals) - min(vals)) / min(vals) * 100
            worst = max(worst, spread)
            print("| %s | %s | %s | %.1f %% |" % (key[0], key[1], " | ".join("%.2f ms" % ms(v) for v in vals), spread))
        ratios = []
        for label, ref, wasm, op in ROWS:
            rs = [m[(wasm, op)] / m[(ref, op)] for m in ms_]
            ratios.append("%s %s: %s" % (wasm, op, " → ".join("%.2f×" % x for x in rs)))
        print("\nRatios per run: " + "; ".join(ratios))
        paired = []
        for label, ref, wasm, op in ROWS:
            rs = []
            for run in runs:
                it = run["iterations"]
                refs = dict(zip(it[ref][op], run[ref][op]))
                rs.append(statistics.median([w / refs[i] for i, w in zip(it[wasm][op], run[wasm][op])
                                             if i in refs]))
            paired.append("%s %s: %s" % (wasm, op, " → ".join("%.2f×" % x for x in rs)))
        print("\nPaired ratios per run (median over iterations of wasmcni/reference in the same "
              "iteration, less sensitive to load drifting during a run): " + "; ".join(paired))
        print("\nLargest spread of a median between runs: %.1f %%" % worst)


if __name__ == "__main__":
    main()
