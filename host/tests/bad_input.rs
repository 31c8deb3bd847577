//! Bad input, exec'd the way a runtime execs the plugin: every case gets the spec's error JSON on
//! stdout with the right code and a message naming the problem, exits non-zero, and leaves
//! nothing behind. These cases fail before any API call, so they need no cluster; the ones that
//! need one (unknown NAD, missing guests, bad ranges, hostile guests) are tests/e2e/002, 005, 006.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

struct Case {
    name: &'static str,
    env: Vec<(&'static str, String)>,
    stdin: Vec<u8>,
    code: u64,
    mentions: &'static str,
}

fn base_env(netns: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_COMMAND", "ADD".into()),
        ("CNI_CONTAINERID", "c0ffee".into()),
        ("CNI_IFNAME", "eth0".into()),
        ("CNI_NETNS", netns.into()),
        ("CNI_PATH", "/nonexistent".into()),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p".into(),
        ),
    ]
}

fn with(
    mut env: Vec<(&'static str, String)>,
    key: &'static str,
    value: Option<&str>,
) -> Vec<(&'static str, String)> {
    env.retain(|(k, _)| *k != key);
    if let Some(v) = value {
        env.push((key, v.to_string()));
    }
    env
}

fn run(env: &[(&str, String)], stdin: &[u8]) -> (i32, Value, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmcni"))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A plugin may answer before reading all of a huge stdin; a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    // A call that hangs (a FIFO opened for reading) is a failure, not a stuck suite.
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if rx.recv_timeout(std::time::Duration::from_secs(30)).is_err() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = tx.send(());
    let _ = watchdog.join();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json, stdout)
}

#[test]
fn thirty_bad_inputs_get_the_right_code_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p).display().to_string();
    // CNI_NETNS: the test's own network namespace (opening it is harmless: no case gets as far
    // as entering it). Where a file must be one, a FIFO stands in to prove nothing blocks on it.
    std::fs::write(d("plain-file"), b"").unwrap();
    nix::unistd::mkfifo(
        Path::new(&d("fifo")),
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
    )
    .unwrap();
    std::fs::write(
        d("kubeconfig"),
        b"apiVersion: v1\nkind: Config\nclusters: []\n",
    )
    .unwrap();
    std::fs::write(d("garbage-kubeconfig"), b"\x00\x01 not yaml: [").unwrap();
    std::fs::write(
        d("cluster.conflist"),
        br#"{"cniVersion":"1.0.0","name":"cbr0","plugins":[{"type":"bridge"}]}"#,
    )
    .unwrap();
    std::fs::write(d("not-json.conflist"), b"{").unwrap();
    std::fs::write(
        d("empty.conflist"),
        br#"{"cniVersion":"1.0.0","name":"x","plugins":[]}"#,
    )
    .unwrap();
    let conf = json!({
        "cniVersion": "1.0.0", "name": "wasmcni", "type": "wasmcni",
        "kubeconfig": d("kubeconfig"), "clusterNetwork": d("cluster.conflist"),
        "cniDir": d("delegates"), "guestCacheDir": d("guests"),
    });
    let set = |k: &str, v: Value| {
        let mut c = conf.clone();
        c[k] = v;
        serde_json::to_vec(&c).unwrap()
    };
    let unset = |k: &str| {
        let mut c = conf.clone();
        c.as_object_mut().unwrap().remove(k);
        serde_json::to_vec(&c).unwrap()
    };
    let good = serde_json::to_vec(&conf).unwrap();
    let env = base_env("/proc/self/ns/net");
    let case = |name, env: Vec<(&'static str, String)>, stdin: Vec<u8>, code, mentions| Case {
        name,
        env,
        stdin,
        code,
        mentions,
    };

    let cases = vec![
        case(
            "no CNI_COMMAND",
            with(env.clone(), "CNI_COMMAND", None),
            good.clone(),
            4,
            "CNI_COMMAND",
        ),
        case(
            "unknown CNI_COMMAND",
            with(env.clone(), "CNI_COMMAND", Some("ATTACH")),
            good.clone(),
            4,
            "ATTACH",
        ),
        case(
            "lower-case CNI_COMMAND",
            with(env.clone(), "CNI_COMMAND", Some("add")),
            good.clone(),
            4,
            "add",
        ),
        case(
            "no CNI_CONTAINERID",
            with(env.clone(), "CNI_CONTAINERID", None),
            good.clone(),
            4,
            "CNI_CONTAINERID",
        ),
        case(
            "empty CNI_CONTAINERID",
            with(env.clone(), "CNI_CONTAINERID", Some("")),
            good.clone(),
            4,
            "CNI_CONTAINERID",
        ),
        case(
            "CNI_CONTAINERID starting with '-'",
            with(env.clone(), "CNI_CONTAINERID", Some("-abc")),
            good.clone(),
            4,
            "CNI_CONTAINERID",
        ),
        case(
            "CNI_CONTAINERID with '/'",
            with(env.clone(), "CNI_CONTAINERID", Some("a/../b")),
            good.clone(),
            4,
            "CNI_CONTAINERID",
        ),
        case(
            "no CNI_IFNAME",
            with(env.clone(), "CNI_IFNAME", None),
            good.clone(),
            4,
            "CNI_IFNAME",
        ),
        case(
            "CNI_IFNAME over 15 bytes",
            with(env.clone(), "CNI_IFNAME", Some("eth0123456789abc")),
            good.clone(),
            4,
            "15",
        ),
        case(
            "CNI_IFNAME with '/'",
            with(env.clone(), "CNI_IFNAME", Some("eth/0")),
            good.clone(),
            4,
            "'/'",
        ),
        case(
            "CNI_IFNAME '..'",
            with(env.clone(), "CNI_IFNAME", Some("..")),
            good.clone(),
            4,
            "CNI_IFNAME",
        ),
        case(
            "CNI_IFNAME with a space",
            with(env.clone(), "CNI_IFNAME", Some("eth 0")),
            good.clone(),
            4,
            "' '",
        ),
        case(
            "ADD without CNI_NETNS",
            with(env.clone(), "CNI_NETNS", None),
            good.clone(),
            4,
            "CNI_NETNS",
        ),
        case(
            "CHECK without CNI_NETNS",
            with(
                with(env.clone(), "CNI_NETNS", None),
                "CNI_COMMAND",
                Some("CHECK"),
            ),
            good.clone(),
            4,
            "CNI_NETNS",
        ),
        case(
            "netns path gone",
            with(
                env.clone(),
                "CNI_NETNS",
                Some("/var/run/netns/wasmcni-no-such-ns"),
            ),
            good.clone(),
            3,
            "wasmcni-no-such-ns",
        ),
        case(
            "CNI_NETNS a FIFO (answered at once, not blocked on)",
            with(env.clone(), "CNI_NETNS", Some(&d("fifo"))),
            good.clone(),
            4,
            "is not a network namespace",
        ),
        case(
            "CNI_NETNS a plain file",
            with(env.clone(), "CNI_NETNS", Some(&d("plain-file"))),
            good.clone(),
            4,
            "is not a network namespace",
        ),
        case(
            "clusterNetwork a FIFO",
            env.clone(),
            set("clusterNetwork", json!(d("fifo"))),
            7,
            "not a regular file (a FIFO)",
        ),
        case(
            "kubeconfig a FIFO",
            env.clone(),
            set("kubeconfig", json!(d("fifo"))),
            7,
            "not a regular file (a FIFO)",
        ),
        case(
            "CNI_ARGS not KEY=VALUE",
            with(env.clone(), "CNI_ARGS", Some("IgnoreUnknown=1;garbage")),
            good.clone(),
            4,
            "garbage",
        ),
        case(
            "CNI_ARGS without the pod",
            with(env.clone(), "CNI_ARGS", Some("IgnoreUnknown=1")),
            good.clone(),
            4,
            "K8S_POD_NAME",
        ),
        case(
            "stdin not JSON",
            env.clone(),
            b"cniVersion: 1.0.0".to_vec(),
            6,
            "not JSON",
        ),
        case("stdin empty", env.clone(), Vec::new(), 6, "not JSON"),
        case(
            "stdin truncated",
            env.clone(),
            good[..good.len() / 2].to_vec(),
            6,
            "not JSON",
        ),
        case(
            "stdin a JSON list",
            env.clone(),
            b"[1,2]".to_vec(),
            7,
            "JSON object",
        ),
        case(
            "stdin over 1 MiB",
            env.clone(),
            vec![b' '; (1 << 20) + 10],
            6,
            "too large",
        ),
        case(
            "cniVersion 0.5.0 (never a CNI version)",
            env.clone(),
            set("cniVersion", json!("0.5.0")),
            1,
            "0.5.0",
        ),
        case(
            "cniVersion 2.0.0",
            env.clone(),
            set("cniVersion", json!("2.0.0")),
            1,
            "supports 0.1.0",
        ),
        case(
            "cniVersion a number",
            env.clone(),
            set("cniVersion", json!(1.0)),
            1,
            "cniVersion",
        ),
        case(
            "cniVersion 1.1 (not spelt as a CNI version)",
            env.clone(),
            set("cniVersion", json!("1.1")),
            1,
            "cniVersion",
        ),
        case("no name", env.clone(), unset("name"), 7, "name"),
        case(
            "no kubeconfig",
            env.clone(),
            unset("kubeconfig"),
            7,
            "kubeconfig",
        ),
        case(
            "no clusterNetwork",
            env.clone(),
            unset("clusterNetwork"),
            7,
            "clusterNetwork",
        ),
        case(
            "kubeconfig of the wrong type",
            env.clone(),
            set("kubeconfig", json!(42)),
            7,
            "invalid type",
        ),
        case(
            "delegation of the wrong type",
            env.clone(),
            set("delegation", json!("multus-default")),
            7,
            "invalid type",
        ),
        case(
            "unknown key in delegation",
            env.clone(),
            set("delegation", json!({"guest": "x", "sha": "y"})),
            7,
            "unknown field",
        ),
        case(
            "guestTimeoutMs negative",
            env.clone(),
            set("guestTimeoutMs", json!(-5)),
            7,
            "invalid value",
        ),
        case(
            "defaultNetworks not a list",
            env.clone(),
            set("defaultNetworks", json!("net-a")),
            7,
            "invalid type",
        ),
        case(
            "defaultNetworks entry a/b/c",
            env.clone(),
            set("defaultNetworks", json!(["a/b/c"])),
            7,
            "a/b/c",
        ),
        case(
            "clusterNetwork file missing",
            env.clone(),
            set("clusterNetwork", json!(d("nope.conflist"))),
            7,
            "cannot read",
        ),
        case(
            "clusterNetwork not JSON",
            env.clone(),
            set("clusterNetwork", json!(d("not-json.conflist"))),
            7,
            "not JSON",
        ),
        case(
            "clusterNetwork with no plugins",
            env.clone(),
            set("clusterNetwork", json!(d("empty.conflist"))),
            7,
            "plugins",
        ),
        case(
            "kubeconfig file missing",
            env.clone(),
            set("kubeconfig", json!(d("nope.kubeconfig"))),
            7,
            "kubeconfig",
        ),
        case(
            "prevResult of another version than the config",
            env.clone(),
            set(
                "prevResult",
                json!({"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.1.0.5/24"}]}),
            ),
            1,
            "prevResult",
        ),
        case(
            "prevResult not a result",
            env.clone(),
            set("prevResult", json!({"ips": "10.1.0.5/24"})),
            7,
            "prevResult",
        ),
        case(
            "prevResult address not a CIDR",
            env.clone(),
            set("prevResult", json!({"ips": [{"address": "10.1.0.999/24"}]})),
            7,
            "prevResult",
        ),
        case(
            "CHECK at cniVersion 0.3.1",
            with(env.clone(), "CNI_COMMAND", Some("CHECK")),
            set("cniVersion", json!("0.3.1")),
            1,
            "does not allow CHECK",
        ),
        case(
            "STATUS at cniVersion 1.0.0",
            with(env.clone(), "CNI_COMMAND", Some("STATUS")),
            good.clone(),
            1,
            "does not allow STATUS",
        ),
        case(
            "GC at cniVersion 0.4.0",
            with(env.clone(), "CNI_COMMAND", Some("GC")),
            set("cniVersion", json!("0.4.0")),
            1,
            "does not allow GC",
        ),
        case(
            "kubeconfig file garbage",
            env.clone(),
            set("kubeconfig", json!(d("garbage-kubeconfig"))),
            7,
            "kubeconfig",
        ),
    ];
    assert!(cases.len() >= 30);

    let mut failures = Vec::new();
    for c in &cases {
        let (status, out, raw) = run(&c.env, &c.stdin);
        let text = format!(
            "{} {}",
            out["msg"].as_str().unwrap_or(""),
            out["details"].as_str().unwrap_or("")
        );
        // Errors are written in the config's version when it is one we speak, else the newest.
        let want_version = serde_json::from_slice::<Value>(&c.stdin)
            .ok()
            .and_then(|v| v["cniVersion"].as_str().map(str::to_string))
            .filter(|v| ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"].contains(&v.as_str()))
            .unwrap_or_else(|| "1.1.0".into());
        let version_ok = out["cniVersion"].as_str() == Some(want_version.as_str());
        if status == 0
            || out["code"].as_u64() != Some(c.code)
            || !text.contains(c.mentions)
            || !version_ok
        {
            failures.push(format!(
                "{}: want code {} mentioning {:?}; got exit {status}: {raw}",
                c.name, c.code, c.mentions
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // Nothing was created: no delegate cache, no compiled guest.
    assert!(
        !Path::new(&d("delegates")).exists(),
        "a delegate cache was written"
    );
    assert!(!Path::new(&d("guests")).exists(), "a guest was compiled");
}

#[test]
fn version_answers_whatever_the_config() {
    let (status, out, _) = run(
        &[("CNI_COMMAND", "VERSION".to_string())],
        br#"{"cniVersion":"0.4.0"}"#,
    );
    assert_eq!(status, 0);
    assert_eq!(out["cniVersion"], "0.4.0");
    assert_eq!(
        out["supportedVersions"],
        json!([
            "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"
        ])
    );
    let (status, out, _) = run(&[("CNI_COMMAND", "VERSION".to_string())], b"");
    assert_eq!((status, out["cniVersion"].as_str()), (0, Some("1.1.0")));
    let (status, out, _) = run(
        &[("CNI_COMMAND", "VERSION".to_string())],
        br#"{"cniVersion":""}"#,
    );
    assert_eq!((status, out["cniVersion"].as_str()), (0, Some("1.1.0")));
}
