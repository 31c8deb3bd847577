//! CNI results (`CniResult::from_value`), as delegates print them, in every version 0.3.0–1.1.0.
//!
//! Every reader is driven: `from_value`, `from_plugin_output` and `from_prev_result` (at each
//! config version) and `prev_result_version`. The input is raw JSON or (after a 0x00 byte) a
//! structured result (valid shape, fuzzed fields) so the conversion code is reached, not just
//! the refusals. Properties: nothing panics; a result converted with `to_version(v)` for every
//! supported `v` carries `cniVersion: v`, has an IP `version` exactly in the 0.x shapes, parses
//! back, and the parsed result converts to the same JSON again (a fixed point); a prevResult
//! written at its config's version is accepted as one.

#![no_main]

use std::net::IpAddr;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use wasmcni::cni::SUPPORTED_VERSIONS;
use wasmcni::cni::types::CniResult;

/// A string field: usually well-formed, sometimes anything.
#[derive(Debug, Arbitrary)]
enum Text {
    Known(u8),
    Any(String),
}

impl Text {
    fn render(&self, known: &[&str]) -> Value {
        match self {
            Text::Known(i) => json!(known[usize::from(*i) % known.len()]),
            Text::Any(s) => json!(s),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Addr {
    Cidr(IpAddr, u8),
    Plain(IpAddr),
    Any(String),
    Number(i64),
}

impl Addr {
    fn render(&self) -> Value {
        match self {
            Addr::Cidr(ip, p) => json!(format!("{ip}/{p}")),
            Addr::Plain(ip) => json!(ip.to_string()),
            Addr::Any(s) => json!(s),
            Addr::Number(n) => json!(n),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Iface {
    name: Text,
    mac: Option<Text>,
    mtu: Option<i64>,
    sandbox: Option<Text>,
}

#[derive(Debug, Arbitrary)]
struct Ip {
    version: Option<Text>,
    address: Addr,
    gateway: Option<Addr>,
    interface: Option<i64>,
}

#[derive(Debug, Arbitrary)]
struct RouteIn {
    dst: Addr,
    gw: Option<Addr>,
}

#[derive(Debug, Arbitrary)]
struct DnsIn {
    nameservers: Vec<String>,
    domain: Option<String>,
    search: Vec<String>,
    options: Vec<String>,
}

#[derive(Debug, Arbitrary)]
struct Structured {
    version: Text,
    interfaces: Option<Vec<Iface>>,
    ips: Option<Vec<Ip>>,
    routes: Option<Vec<RouteIn>>,
    dns: Option<DnsIn>,
    extra: Vec<(String, String)>,
}

const NAMES: &[&str] = &["eth0", "net1", "", "lo", "veth12345678"];
const MACS: &[&str] = &["aa:bb:cc:dd:ee:ff", "", "02:42:ac:11:00:02"];
const SANDBOXES: &[&str] = &["/var/run/netns/x", "", "/proc/1/ns/net"];
const IP_VERSIONS: &[&str] = &["4", "6", ""];

impl Structured {
    fn render(&self) -> Value {
        let mut o = Map::new();
        let mut versions: Vec<&str> = SUPPORTED_VERSIONS.to_vec();
        versions.extend(["0.2.0", "0.1.0", "2.0.0", ""]);
        o.insert("cniVersion".into(), self.version.render(&versions));
        if let Some(list) = &self.interfaces {
            let list: Vec<Value> = list
                .iter()
                .map(|i| {
                    let mut m = Map::new();
                    m.insert("name".into(), i.name.render(NAMES));
                    if let Some(mac) = &i.mac {
                        m.insert("mac".into(), mac.render(MACS));
                    }
                    if let Some(mtu) = i.mtu {
                        m.insert("mtu".into(), json!(mtu));
                    }
                    if let Some(s) = &i.sandbox {
                        m.insert("sandbox".into(), s.render(SANDBOXES));
                    }
                    Value::Object(m)
                })
                .collect();
            o.insert("interfaces".into(), Value::Array(list));
        }
        if let Some(list) = &self.ips {
            let list: Vec<Value> = list
                .iter()
                .map(|ip| {
                    let mut m = Map::new();
                    if let Some(v) = &ip.version {
                        m.insert("version".into(), v.render(IP_VERSIONS));
                    }
                    m.insert("address".into(), ip.address.render());
                    if let Some(g) = &ip.gateway {
                        m.insert("gateway".into(), g.render());
                    }
                    if let Some(i) = ip.interface {
                        m.insert("interface".into(), json!(i));
                    }
                    Value::Object(m)
                })
                .collect();
            o.insert("ips".into(), Value::Array(list));
        }
        if let Some(list) = &self.routes {
            let list: Vec<Value> = list
                .iter()
                .map(|r| {
                    let mut m = Map::new();
                    m.insert("dst".into(), r.dst.render());
                    if let Some(g) = &r.gw {
                        m.insert("gw".into(), g.render());
                    }
                    Value::Object(m)
                })
                .collect();
            o.insert("routes".into(), Value::Array(list));
        }
        if let Some(d) = &self.dns {
            let mut m = Map::new();
            m.insert("nameservers".into(), json!(d.nameservers));
            if let Some(domain) = &d.domain {
                m.insert("domain".into(), json!(domain));
            }
            m.insert("search".into(), json!(d.search));
            m.insert("options".into(), json!(d.options));
            o.insert("dns".into(), Value::Object(m));
        }
        for (k, v) in &self.extra {
            o.entry(k.clone()).or_insert_with(|| json!(v));
        }
        Value::Object(o)
    }
}

fn check(value: &Value) {
    // How a delegate's stdout and a config's prevResult are read, for every config version.
    for cv in SUPPORTED_VERSIONS {
        if let Ok(r) = CniResult::from_plugin_output(value, cv) {
            round_trip(&r);
        }
        if let Ok(r) = CniResult::from_prev_result(value, cv) {
            round_trip(&r);
            // Handed on as the next plugin's prevResult, at the same config version.
            let out = r.to_version(cv);
            CniResult::from_prev_result(&out, cv).unwrap_or_else(|e| {
                panic!("{cv}: a prevResult written at its config's version is refused: {e}\n{out}")
            });
        }
        let _ = CniResult::prev_result_version(value, cv);
    }
    if let Ok(r) = CniResult::from_value(value) {
        round_trip(&r);
    }
}

/// `to_version(v)` for every supported `v`: the right `cniVersion`, an IP `version` exactly in
/// the 0.x shapes, and the output reads back to a result that writes the same output again.
fn round_trip(r: &CniResult) {
    let _ = r.addresses_of("eth0");
    let _ = r.mac_of("eth0");
    if let Some(first) = r.interfaces.first() {
        let _ = r.addresses_of(&first.name);
        let _ = r.mac_of(&first.name);
    }
    for v in SUPPORTED_VERSIONS {
        let out = r.to_version(v);
        assert_eq!(out["cniVersion"].as_str(), Some(*v), "{out}");
        let legacy = v.starts_with("0.");
        for ip in out["ips"].as_array().into_iter().flatten() {
            assert_eq!(ip.get("version").is_some(), legacy, "{v}: {ip}");
        }
        let back = CniResult::from_value(&out)
            .unwrap_or_else(|e| panic!("{v}: a converted result does not parse again: {e}\n{out}"));
        assert_eq!(
            back.to_version(v),
            out,
            "{v}: converting again changed the result"
        );
        // Once more through text, as a result travels between plugins.
        let text = serde_json::to_vec(&out).expect("JSON serializes");
        let reread: Value = serde_json::from_slice(&text).expect("JSON reparses");
        let again = CniResult::from_value(&reread).expect("reparses from text");
        assert_eq!(again.to_version(v), out, "{v}: through text");
    }
}

fuzz_target!(|data: &[u8]| {
    // A leading 0x00 selects the structured form; anything else is JSON text (the seeds are real
    // results, which start with '{').
    match data.split_first() {
        Some((0, rest)) => {
            if let Ok(s) = Structured::arbitrary_take_rest(Unstructured::new(rest)) {
                check(&s.render());
            }
        }
        _ => {
            if let Ok(v) = serde_json::from_slice::<Value>(data) {
                check(&v);
            }
        }
    }
});
