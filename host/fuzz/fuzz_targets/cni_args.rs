//! The runtime's environment (`cni::Request::from_env`): CNI_COMMAND, CNI_CONTAINERID,
//! CNI_IFNAME (the kernel's name rules), CNI_NETNS, CNI_PATH and CNI_ARGS (`K=V;K=V`).
//!
//! Input: raw text, one `KEY=VALUE` per line (the seeds), or after a leading 0x00 a structured
//! environment (the CNI_* names, CNI_ARGS built from pairs). Properties: nothing panics; an
//! accepted request has a valid container ID and interface name (for ADD/DEL/CHECK), a netns
//! unless DEL, CNI_ARGS kept verbatim and no empty K8S_* values.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use wasmcni::cni::{Command, Request, validate_ifname};

const KEYS: &[&str] = &[
    "CNI_COMMAND",
    "CNI_CONTAINERID",
    "CNI_NETNS",
    "CNI_IFNAME",
    "CNI_ARGS",
    "CNI_PATH",
];
const COMMANDS: &[&str] = &["ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC", "add", ""];
const ARG_KEYS: &[&str] = &[
    "K8S_POD_NAMESPACE",
    "K8S_POD_NAME",
    "K8S_POD_UID",
    "K8S_POD_INFRA_CONTAINER_ID",
    "IgnoreUnknown",
];

#[derive(Debug, Arbitrary)]
enum Key {
    Known(u8),
    Any(String),
}

#[derive(Debug, Arbitrary)]
enum Val {
    Command(u8),
    Any(String),
    /// CNI_ARGS-shaped: pairs joined with ';' (`None` value: a pair without '=').
    Args(Vec<(Key, Option<String>)>),
}

#[derive(Debug, Arbitrary)]
struct Structured {
    vars: Vec<(Key, Val)>,
}

fn pick<'a>(list: &[&'a str], i: u8) -> &'a str {
    list[usize::from(i) % list.len()]
}

impl Structured {
    fn render(&self) -> Vec<(String, String)> {
        self.vars
            .iter()
            .map(|(k, v)| {
                let k = match k {
                    Key::Known(i) => pick(KEYS, *i).to_string(),
                    Key::Any(s) => s.clone(),
                };
                let v = match v {
                    Val::Command(i) => pick(COMMANDS, *i).to_string(),
                    Val::Any(s) => s.clone(),
                    Val::Args(pairs) => pairs
                        .iter()
                        .map(|(k, v)| {
                            let k = match k {
                                Key::Known(i) => pick(ARG_KEYS, *i),
                                Key::Any(s) => s,
                            };
                            match v {
                                Some(v) => format!("{k}={v}"),
                                None => k.to_string(),
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(";"),
                };
                (k, v)
            })
            .collect()
    }
}

fn check(vars: &[(String, String)]) {
    let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let Ok(req) = Request::from_env(vars) else {
        return;
    };
    assert_eq!(Some(req.command.as_str()), get("CNI_COMMAND"));
    assert_eq!(req.args.raw, get("CNI_ARGS").unwrap_or(""));
    for v in [
        &req.args.pod_namespace,
        &req.args.pod_name,
        &req.args.pod_uid,
        &req.args.infra_container_id,
    ] {
        assert_ne!(v.as_deref(), Some(""));
    }
    assert!(req.path.iter().all(|p| !p.as_os_str().is_empty()));
    match req.command {
        Command::Version | Command::Status | Command::Gc => {}
        Command::Add | Command::Del | Command::Check => {
            assert!(!req.container_id.is_empty());
            assert!(validate_ifname(&req.ifname).is_ok(), "{:?}", req.ifname);
            assert!(req.netns.is_some() || req.command == Command::Del);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((0, rest)) => {
            if let Ok(s) = Structured::arbitrary_take_rest(Unstructured::new(rest)) {
                check(&s.render());
            }
        }
        _ => {
            let text = String::from_utf8_lossy(data);
            let vars: Vec<(String, String)> = text
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            check(&vars);
        }
    }
});
