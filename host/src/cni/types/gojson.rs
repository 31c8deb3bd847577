//! Go's `encoding/json`, as far as libcni's result types see it: case-insensitive keys, `null`
//! as absent, Go's integer and `net.IP`/CIDR text rules.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde_json::{Map, Value};

/// Go's `encoding/json` matches object keys to fields case-insensitively (Unicode simple
/// folding: also `ſ`→s and the Kelvin sign →k).
pub(super) fn fold(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '\u{17f}' => 's',
            '\u{212a}' => 'k',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// The value of field `name` of a Go struct decoded from `obj`: the exact key, else one that
/// folds to it. `null` is absent (Go leaves the field as it was). Go takes the last of several
/// spellings in document order, which a `serde_json::Value` no longer has: the exact one wins.
pub(super) fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    let v = obj.get(name).or_else(|| {
        let want = fold(name);
        obj.iter().find(|(k, _)| fold(k) == want).map(|(_, v)| v)
    });
    v.filter(|v| !v.is_null())
}

pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

pub(super) fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{path}: cannot unmarshal {} into an object", kind(v)))
}

pub(super) fn string(obj: &Map<String, Value>, name: &str, path: &str) -> Result<String, String> {
    match field(obj, name) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(format!(
            "{path}.{name}: cannot unmarshal {} into a string",
            kind(v)
        )),
    }
}

pub(super) fn strings(
    obj: &Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<Vec<String>, String> {
    list(obj, name, path)?
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Null => Ok(String::new()),
            Value::String(s) => Ok(s.clone()),
            v => Err(format!(
                "{path}.{name}[{i}]: cannot unmarshal {} into a string",
                kind(v)
            )),
        })
        .collect()
}

pub(super) fn list<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<&'a [Value], String> {
    match field(obj, name) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(v) => Err(format!(
            "{path}.{name}: cannot unmarshal {} into a list",
            kind(v)
        )),
    }
}

/// A Go `int` (64-bit): an integer literal in range; `1.0` and `1e3` are refused as Go does.
pub(super) fn int(obj: &Map<String, Value>, name: &str, path: &str) -> Result<Option<i64>, String> {
    match field(obj, name) {
        None => Ok(None),
        Some(Value::Number(n)) if !n.is_f64() => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{path}.{name}: {n} overflows a Go int")),
        Some(v) => Err(format!("{path}.{name}: cannot unmarshal {v} into a Go int")),
    }
}

/// An address as Go's `net.IP` text: IPv4-mapped IPv6 is written as IPv4; "" is no address.
pub(super) fn ip(
    obj: &Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<Option<IpAddr>, String> {
    let s = string(obj, name, path)?;
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<IpAddr>()
        .map(|a| Some(a.to_canonical()))
        .map_err(|_| format!("{path}.{name}: invalid IP address {s:?}"))
}

/// A CIDR as libcni's `types.ParseCIDR` (address kept, not masked) and `IPNet.String()`
/// write it: an IPv4-mapped IPv6 address becomes IPv4 with the last 32 bits of its mask.
pub(super) fn cidr(obj: &Map<String, Value>, name: &str, path: &str) -> Result<IpNetwork, String> {
    let s = match field(obj, name) {
        // Go would keep a zero IPNet and write "<nil>": nothing a runtime could use.
        None => return Err(format!("{path}.{name} is required")),
        Some(Value::String(s)) => s.clone(),
        Some(v) => {
            return Err(format!(
                "{path}.{name}: cannot unmarshal {} into a CIDR string",
                kind(v)
            ));
        }
    };
    let bad = || format!("{path}.{name}: invalid CIDR address: {s}");
    let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    // Go's dtoi: decimal digits only (leading zeros allowed), at least one.
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 9 {
        return Err(bad());
    }
    let prefix: u32 = prefix.parse().map_err(|_| bad())?;
    let bits = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > bits {
        return Err(bad());
    }
    let net = match addr.to_canonical() {
        IpAddr::V4(v4) if addr.is_ipv6() => {
            IpNetwork::new(IpAddr::V4(v4), prefix.saturating_sub(96) as u8)
        }
        a => IpNetwork::new(a, prefix as u8),
    };
    net.map_err(|_| bad())
}
