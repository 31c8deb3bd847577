//! The `k8s.v1.cni.cncf.io/networks` annotation as the default delegation guest
//! (`guests/multus-default`, compiled natively) reads it: comma form and JSON form, after the
//! cluster's default networks; then the host's checks of a guest's answer that need no API server
//! (`cni::validate_ifname`, default `net<i>` names, uniqueness against `CNI_IFNAME`, non-empty
//! network references, `cni-args` as JSON) — the order `delegate::plan::plan` applies them.
//!
//! Input: raw annotation text (the seeds), or after a leading 0x00 a structured one (comma
//! elements or JSON elements with fuzzed field types). Properties: nothing panics; every accepted
//! attachment names a non-empty namespace and name; a comma-form interface is non-empty and has no
//! '@'; `cni-args` is always a JSON object.

#![no_main]

use std::collections::HashSet;

use arbitrary::{Arbitrary, Unstructured};
use guest_multus_default::MultusDefault;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use wasmcni_guest::delegation::{DelegationPolicy, NetworkRef, request};

const ANNOTATION: &str = "k8s.v1.cni.cncf.io/networks";

#[derive(Debug, Arbitrary)]
enum Field {
    Str(String),
    Num(i64),
    Bool(bool),
    Null,
    List(Vec<String>),
    Obj(Vec<(String, String)>),
}

impl Field {
    fn render(&self) -> Value {
        match self {
            Field::Str(s) => json!(s),
            Field::Num(n) => json!(n),
            Field::Bool(b) => json!(b),
            Field::Null => Value::Null,
            Field::List(l) => json!(l),
            Field::Obj(pairs) => {
                Value::Object(pairs.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
            }
        }
    }
}

#[derive(Debug, Arbitrary)]
struct JsonElement {
    name: Option<Field>,
    namespace: Option<Field>,
    interface: Option<Field>,
    ips: Option<Field>,
    mac: Option<Field>,
    default_route: Option<Field>,
    cni_args: Option<Field>,
}

#[derive(Debug, Arbitrary)]
enum Form {
    /// `[ns/]name[@if]`, joined with ", ".
    Comma(Vec<(Option<String>, String, Option<String>)>),
    Json(Vec<JsonElement>),
}

#[derive(Debug, Arbitrary)]
struct Structured {
    pod_namespace: String,
    cluster_ifname: String,
    default_networks: Vec<(String, String)>,
    form: Form,
}

impl Form {
    fn render(&self) -> String {
        match self {
            Form::Comma(elements) => elements
                .iter()
                .map(|(ns, name, iface)| {
                    let mut s = ns.as_ref().map(|n| format!("{n}/")).unwrap_or_default();
                    s.push_str(name);
                    if let Some(i) = iface {
                        s.push('@');
                        s.push_str(i);
                    }
                    s
                })
                .collect::<Vec<_>>()
                .join(", "),
            Form::Json(elements) => {
                let list: Vec<Value> = elements
                    .iter()
                    .map(|e| {
                        let mut m = Map::new();
                        for (k, f) in [
                            ("name", &e.name),
                            ("namespace", &e.namespace),
                            ("interface", &e.interface),
                            ("ips", &e.ips),
                            ("mac", &e.mac),
                            ("default-route", &e.default_route),
                            ("cni-args", &e.cni_args),
                        ] {
                            if let Some(f) = f {
                                m.insert(k.into(), f.render());
                            }
                        }
                        Value::Object(m)
                    })
                    .collect();
                Value::Array(list).to_string()
            }
        }
    }
}

fn check(pod_namespace: &str, cluster_ifname: &str, defaults: &[(String, String)], text: &str) {
    let mut req = request(pod_namespace, "pod", &[], &[(ANNOTATION, text)]);
    req.default_networks = defaults
        .iter()
        .map(|(namespace, name)| NetworkRef {
            namespace: namespace.clone(),
            name: name.clone(),
        })
        .collect();
    let Ok(decided) = MultusDefault::decide(&req) else {
        return;
    };
    let comma = !text.trim().starts_with('[');
    let mut seen: HashSet<String> = HashSet::from([cluster_ifname.to_string()]);
    for (i, a) in decided.iter().enumerate() {
        if i >= defaults.len() {
            // The annotation's own attachments.
            assert!(!a.network.name.is_empty(), "{a:?} from {text:?}");
            assert!(!a.network.namespace.is_empty(), "{a:?} from {text:?}");
            if comma {
                assert!(!a.network.name.contains('/'), "{a:?} from {text:?}");
                let iface = a.interface.as_deref().unwrap_or("x");
                assert!(!iface.is_empty() && !iface.contains('@'), "{a:?}");
            }
        }
        if let Some(args) = &a.cni_args {
            let v: Value = serde_json::from_str(args).expect("cni-args is JSON");
            assert!(v.is_object(), "{args}");
        }
        // The host's checks (delegate::plan::plan), in its order.
        let ifname = a
            .interface
            .clone()
            .unwrap_or_else(|| format!("net{}", i + 1));
        if wasmcni::cni::validate_ifname(&ifname).is_err() {
            return;
        }
        assert!(ifname.len() <= 15);
        if !seen.insert(ifname) {
            return;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((0, rest)) => {
            if let Ok(s) = Structured::arbitrary_take_rest(Unstructured::new(rest)) {
                let ns = if s.pod_namespace.is_empty() {
                    "default"
                } else {
                    &s.pod_namespace
                };
                check(ns, &s.cluster_ifname, &s.default_networks, &s.form.render());
            }
        }
        _ => check("pod-ns", "eth0", &[], &String::from_utf8_lossy(data)),
    }
});
