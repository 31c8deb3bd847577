//! Wire types of the spec: network config lists and results, with version conversion.
//!
//! Results are held in the 1.x shape and written in the shape the caller's cniVersion asks for
//! (0.3.x/0.4.0 add `version` to each IP config), as libcni's `convert` does.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A network configuration list (`.conflist`), or a single config lifted into one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetConfList {
    /// `cniVersion`: the version every plugin of the list is called with.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// `name`: the network's name, injected into each plugin's config.
    pub name: String,
    /// `plugins`: each plugin's own config, passed through untouched apart from the injected keys.
    pub plugins: Vec<Map<String, Value>>,
}

impl NetConfList {
    /// Parse a conflist, or a single network config (which becomes a list of one).
    pub fn parse(value: &Value) -> Result<Self, String> {
        let obj = value
            .as_object()
            .ok_or("a network config must be a JSON object")?;
        let string = |k: &str| -> Result<String, String> {
            match obj.get(k) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(Value::String(_)) | None => Err(format!("{k:?} is required")),
                Some(other) => Err(format!("{k:?} must be a string, not {other}")),
            }
        };
        let cni_version = string("cniVersion")?;
        let name = string("name")?;
        let plugins = match obj.get("plugins") {
            Some(Value::Array(list)) => {
                if list.is_empty() {
                    return Err("\"plugins\" is empty".into());
                }
                list.iter()
                    .enumerate()
                    .map(|(i, p)| {
                        p.as_object()
                            .cloned()
                            .ok_or(format!("plugins[{i}] is not an object"))
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            Some(_) => return Err("\"plugins\" must be a list".into()),
            None => vec![obj.clone()],
        };
        for (i, p) in plugins.iter().enumerate() {
            match p.get("type") {
                Some(Value::String(t)) if !t.is_empty() => {}
                _ => {
                    return Err(format!(
                        "plugins[{i}]: \"type\" is required and must be a string"
                    ));
                }
            }
        }
        Ok(NetConfList {
            cni_version,
            name,
            plugins,
        })
    }

    /// The `type` of plugin `i`.
    pub fn plugin_type(&self, i: usize) -> &str {
        self.plugins[i]["type"].as_str().unwrap_or_default()
    }

    /// Plugin `i`'s config as the spec hands it to a plugin: with `name`, `cniVersion` and (when
    /// given) `prevResult` injected.
    pub fn plugin_conf(&self, i: usize, prev: Option<&CniResult>) -> Value {
        let mut conf = self.plugins[i].clone();
        conf.insert("name".into(), Value::String(self.name.clone()));
        conf.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        conf.remove("prevResult");
        if let Some(prev) = prev {
            conf.insert("prevResult".into(), prev.to_version(&self.cni_version));
        }
        Value::Object(conf)
    }
}

/// An interface a plugin created or configured.
///
/// The 1.1 keys `socketPath` and `pciID` are held beside it, in [`CniResult::interface_ext`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    /// `name`.
    pub name: String,
    /// `mac`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// `mtu` (1.0+; libcni omits 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// `sandbox`: the netns path for interfaces inside the container, empty on the host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

/// The 1.1 keys of an interface, held beside [`Interface`] (same index in
/// [`CniResult::interface_ext`]) so that code building an `Interface` need not know them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InterfaceExt {
    /// `socketPath` (1.1).
    #[serde(
        rename = "socketPath",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub socket_path: String,
    /// `pciID` (1.1).
    #[serde(rename = "pciID", default, skip_serializing_if = "String::is_empty")]
    pub pci_id: String,
}

/// One IP configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpConfig {
    /// `version` ("4"/"6") exactly as a 0.3.x/0.4.0 result wrote it (libcni copies it verbatim,
    /// even empty or wrong, between 0.x versions). `None` when read from a 1.x result; computed
    /// from the address when a 1.x result is written as 0.x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `address`, CIDR notation.
    pub address: IpNetwork,
    /// `gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// `interface`: index into `interfaces` (libcni does not check it is in range).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// One route.
///
/// The keys `mtu`, `advmss`, `priority`, `table` and `scope` are held beside it, in
/// [`CniResult::route_ext`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// `dst`.
    pub dst: IpNetwork,
    /// `gw`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// The 1.1 keys of a route, held beside [`Route`] (same index in [`CniResult::route_ext`]).
/// libcni keeps them in every version (0.3.x and 0.4.0 too: its `types.Route` is shared).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteExt {
    /// `mtu` (omitted when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mtu: i64,
    /// `advmss` (omitted when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub advmss: i64,
    /// `priority` (omitted when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i64,
    /// `table` (written when set, 0 included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<i64>,
    /// `scope` (written when set, 0 included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<i64>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// DNS settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dns {
    /// `nameservers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// `domain`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// `search`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// `options`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    fn is_empty(&self) -> bool {
        self == &Dns::default()
    }
}

/// A result: the spec 1.1.0 result, plus what libcni carries over from a 0.x result it read
/// (each IP's `version` as written).
///
/// Read with [`CniResult::from_value`] (or [`CniResult::from_plugin_output`],
/// [`CniResult::from_prev_result`]), written with [`CniResult::to_version`]; both follow
/// libcni v1.3.1 (`pkg/types/{040,100}`, `pkg/types/internal`), which tests/versions.rs checks
/// field by field against libcni itself. `Serialize`/`Deserialize` are the delegate cache's
/// own format, not a CNI wire format.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CniResult {
    /// `cniVersion` of the result as read (empty: made here, treated as 1.1.0, as libcni treats
    /// a result without a version).
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// `interfaces`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// `ips`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// `routes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// `dns`.
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
    /// `socketPath`/`pciID` of `interfaces[i]` at index `i`; missing entries are empty.
    #[serde(
        rename = "interfaceExt",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub interface_ext: Vec<InterfaceExt>,
    /// `mtu`/`advmss`/`priority`/`table`/`scope` of `routes[i]` at index `i`; missing entries
    /// are unset.
    #[serde(rename = "routeExt", default, skip_serializing_if = "Vec::is_empty")]
    pub route_ext: Vec<RouteExt>,
}

/// The two shapes libcni has for the versions wasmcni speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// 0.3.0, 0.3.1, 0.4.0 (`pkg/types/040`): `version` on each IP, interfaces without
    /// `mtu`/`socketPath`/`pciID`, `dns` always written.
    V04,
    /// 1.0.0, 1.1.0 (`pkg/types/100`): no IP `version`, `dns` omitted when empty.
    V1,
}

fn shape(version: &str) -> Option<Shape> {
    match version {
        "0.3.0" | "0.3.1" | "0.4.0" => Some(Shape::V04),
        "1.0.0" | "1.1.0" => Some(Shape::V1),
        _ => None,
    }
}

/// Go's `encoding/json` matches object keys to fields case-insensitively (Unicode simple
/// folding: also `ſ`→s and the Kelvin sign →k).
fn fold(key: &str) -> String {
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
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    let v = obj.get(name).or_else(|| {
        let want = fold(name);
        obj.iter().find(|(k, _)| fold(k) == want).map(|(_, v)| v)
    });
    v.filter(|v| !v.is_null())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{path}: cannot unmarshal {} into an object", kind(v)))
}

fn string(obj: &Map<String, Value>, name: &str, path: &str) -> Result<String, String> {
    match field(obj, name) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(format!(
            "{path}.{name}: cannot unmarshal {} into a string",
            kind(v)
        )),
    }
}

fn strings(obj: &Map<String, Value>, name: &str, path: &str) -> Result<Vec<String>, String> {
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

fn list<'a>(obj: &'a Map<String, Value>, name: &str, path: &str) -> Result<&'a [Value], String> {
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
fn int(obj: &Map<String, Value>, name: &str, path: &str) -> Result<Option<i64>, String> {
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
fn ip(obj: &Map<String, Value>, name: &str, path: &str) -> Result<Option<IpAddr>, String> {
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
fn cidr(obj: &Map<String, Value>, name: &str, path: &str) -> Result<IpNetwork, String> {
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

impl CniResult {
    /// Read a result the way libcni reads one from bytes (`create.CreateFromBytes`): its own
    /// `cniVersion` (absent or empty means 0.1.0) picks the shape.
    pub fn from_value(v: &Value) -> Result<Self, String> {
        let obj = object(v, "result")?;
        let version = match field(obj, "cniVersion") {
            None => "0.1.0".to_string(),
            Some(Value::String(s)) if s.is_empty() => "0.1.0".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => {
                return Err(format!(
                    "decoding version from network config: cannot unmarshal {} into a string",
                    kind(v)
                ));
            }
        };
        Self::create(&version, obj)
    }

    /// Read a plugin's stdout for a config at `conf_version`, as libcni's
    /// `invoke.ExecPluginWithResult` does: a result without a (string, non-empty) `cniVersion`
    /// is taken to be at `conf_version`; `null` is an empty result.
    pub fn from_plugin_output(v: &Value, conf_version: &str) -> Result<Self, String> {
        let empty = Map::new();
        let obj = match v {
            Value::Null => &empty,
            v => object(v, "failed to unmarshal raw result")?,
        };
        match obj.get("cniVersion") {
            Some(Value::String(s)) if !s.is_empty() => Self::create(s, obj),
            _ => {
                let mut obj = obj.clone();
                obj.insert("cniVersion".into(), Value::String(conf_version.into()));
                Self::create(conf_version, &obj)
            }
        }
    }

    /// Read the `prevResult` of a config at `conf_version`, as every reference plugin does
    /// (`version.ParsePrevResult`): the config's version picks the shape, and the result's own
    /// `cniVersion` (the config's when absent) must be one of that shape's versions — so a
    /// 0.4.0 prevResult in a 0.3.1 config is read, in a 1.0.0 config refused
    /// ([`CniResult::prev_result_version`] tells that case apart).
    pub fn from_prev_result(v: &Value, conf_version: &str) -> Result<Self, String> {
        let version = Self::prev_result_version(v, conf_version)?;
        let mut obj = object(v, "prevResult")?.clone();
        obj.retain(|k, _| fold(k) != "cniversion");
        obj.insert("cniVersion".into(), Value::String(version));
        Self::create(conf_version, &obj).map_err(|e| format!("could not parse prevResult: {e}"))
    }

    /// The version a `prevResult` is read at in a config at `conf_version`, or why libcni's
    /// `version.ParsePrevResult` refuses that version (a version of the other shape, an unknown
    /// one, or a config version libcni has no result type for). Only the version is judged: a
    /// prevResult that is not an object passes here and is refused by
    /// [`CniResult::from_prev_result`].
    pub fn prev_result_version(v: &Value, conf_version: &str) -> Result<String, String> {
        let Some(obj) = v.as_object() else {
            return Ok(conf_version.to_string());
        };
        // ParsePrevResult injects "CNIVersion" (sic) unless that very key holds a non-empty
        // string; Go then marshals the map with sorted keys, and the struct's `cniVersion`
        // takes the last key that folds to it (`null` leaves it as it was).
        let injected = match obj.get("CNIVersion") {
            None => true,
            Some(Value::String(s)) => s.is_empty(),
            Some(_) => false,
        };
        let mut keys: Vec<(&str, Value)> = obj
            .iter()
            .filter(|(k, _)| fold(k) == "cniversion" && (k.as_str() != "CNIVersion" || !injected))
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        if injected {
            keys.push(("CNIVersion", Value::String(conf_version.into())));
        }
        keys.sort_by(|a, b| a.0.cmp(b.0));
        let mut version = String::new();
        for (_, value) in keys {
            match value {
                Value::Null => {}
                Value::String(s) => version = s,
                v => {
                    return Err(format!(
                        "could not parse prevResult: cannot unmarshal {} into cniVersion",
                        kind(&v)
                    ));
                }
            }
        }
        let family = shape(conf_version).ok_or_else(|| {
            format!("could not parse prevResult: unsupported CNI result version {conf_version:?}")
        })?;
        if shape(&version) != Some(family) {
            let supported = match family {
                Shape::V04 => "[0.3.0 0.3.1 0.4.0]",
                Shape::V1 => "[1.0.0 1.1.0]",
            };
            return Err(format!(
                "could not parse prevResult: result type supports {supported} but unmarshalled CNIVersion is {version:?}"
            ));
        }
        Ok(version)
    }

    /// libcni's `create.Create(version, bytes)`: the shape of `version`, then the result's own
    /// `cniVersion` must be one of that shape's versions.
    fn create(version: &str, obj: &Map<String, Value>) -> Result<Self, String> {
        let shape = shape(version).ok_or_else(|| {
            format!(
                "unsupported CNI result version {version:?} (wasmcni reads 0.3.0, 0.3.1, 0.4.0, \
                 1.0.0 and 1.1.0)"
            )
        })?;
        let mut r = Self::parse(shape, obj)?;
        if self::shape(&r.cni_version) != Some(shape) {
            let supported = match shape {
                Shape::V04 => "[0.3.0 0.3.1 0.4.0]",
                Shape::V1 => "[1.0.0 1.1.0]",
            };
            return Err(format!(
                "result type supports {supported} but unmarshalled CNIVersion is {:?}",
                r.cni_version
            ));
        }
        if shape == Shape::V1 {
            for ip in &mut r.ips {
                ip.version = None;
            }
        }
        Ok(r)
    }

    /// Decode `obj` into libcni's struct of `shape`: unknown keys are dropped, and so are the
    /// keys that shape has no field for (a 0.x interface's `mtu`, a 1.x IP's `version`).
    fn parse(shape: Shape, obj: &Map<String, Value>) -> Result<Self, String> {
        let v1 = shape == Shape::V1;
        let mut r = CniResult {
            cni_version: string(obj, "cniVersion", "result")?,
            ..Default::default()
        };
        for (i, v) in list(obj, "interfaces", "result")?.iter().enumerate() {
            let path = format!("interfaces[{i}]");
            let o = object(v, &path)?;
            let mut iface = Interface {
                name: string(o, "name", &path)?,
                mac: string(o, "mac", &path)?,
                mtu: None,
                sandbox: string(o, "sandbox", &path)?,
            };
            let mut ext = InterfaceExt::default();
            if v1 {
                iface.mtu = match int(o, "mtu", &path)? {
                    None | Some(0) => None,
                    Some(n) => Some(u32::try_from(n).map_err(|_| {
                        format!("{path}.mtu: {n} is not an MTU (wasmcni holds 0 … 2^32-1)")
                    })?),
                };
                ext.socket_path = string(o, "socketPath", &path)?;
                ext.pci_id = string(o, "pciID", &path)?;
            }
            r.interfaces.push(iface);
            r.interface_ext.push(ext);
        }
        for (i, v) in list(obj, "ips", "result")?.iter().enumerate() {
            let path = format!("ips[{i}]");
            let o = object(v, &path)?;
            let interface = match int(o, "interface", &path)? {
                None => None,
                Some(n) => Some(usize::try_from(n).map_err(|_| {
                    format!("{path}.interface: {n} is not an index into interfaces")
                })?),
            };
            r.ips.push(IpConfig {
                version: if v1 {
                    None
                } else {
                    Some(string(o, "version", &path)?)
                },
                address: cidr(o, "address", &path)?,
                gateway: ip(o, "gateway", &path)?,
                interface,
            });
        }
        for (i, v) in list(obj, "routes", "result")?.iter().enumerate() {
            let path = format!("routes[{i}]");
            let o = object(v, &path)?;
            r.routes.push(Route {
                dst: cidr(o, "dst", &path)?,
                gw: ip(o, "gw", &path)?,
            });
            r.route_ext.push(RouteExt {
                mtu: int(o, "mtu", &path)?.unwrap_or(0),
                advmss: int(o, "advmss", &path)?.unwrap_or(0),
                priority: int(o, "priority", &path)?.unwrap_or(0),
                table: int(o, "table", &path)?,
                scope: int(o, "scope", &path)?,
            });
        }
        if let Some(d) = field(obj, "dns") {
            let o = object(d, "dns")?;
            r.dns = Dns {
                nameservers: strings(o, "nameservers", "dns")?,
                domain: string(o, "domain", "dns")?,
                search: strings(o, "search", "dns")?,
                options: strings(o, "options", "dns")?,
            };
        }
        if r.interface_ext
            .iter()
            .all(|e| e == &InterfaceExt::default())
        {
            r.interface_ext.clear();
        }
        if r.route_ext.iter().all(|e| e == &RouteExt::default()) {
            r.route_ext.clear();
        }
        Ok(r)
    }

    /// The result in the shape of `version`, as JSON, exactly as libcni's `GetAsVersion` +
    /// `json.Marshal` write it; see [`CniResult::try_to_version`]. For a version libcni has no
    /// converter to, the result as held (what libcni hands the next plugin of an ADD: the
    /// previous result, unconverted).
    pub fn to_version(&self, version: &str) -> Value {
        self.try_to_version(version).unwrap_or_else(|_| {
            let own = self.source_version();
            self.try_to_version(own)
                .expect("a result converts to its own version")
        })
    }

    fn source_version(&self) -> &str {
        if self.cni_version.is_empty() {
            "1.1.0"
        } else {
            &self.cni_version
        }
    }

    /// The result converted to `version` as libcni v1.3.1 does:
    ///
    /// | from → to | interfaces | ips | routes | dns |
    /// |---|---|---|---|---|
    /// | 1.x → 1.x | all keys | no `version` | all keys | omitted when empty |
    /// | 1.x → 0.x | `name`, `mac`, `sandbox` | `version` from the address | all keys | always written |
    /// | 0.x → 0.x | as read | `version` as read (even `""`) | all keys | always written |
    /// | 0.x → 1.x | as read | `version` dropped | all keys | omitted when empty |
    ///
    /// Errors on a version libcni cannot convert to (0.1.0 and 0.2.0 are not spoken here).
    pub fn try_to_version(&self, version: &str) -> Result<Value, String> {
        let from = self.source_version();
        let to = shape(version)
            .ok_or_else(|| format!("no converter for CNI result version {from} to {version}"))?;
        let from_shape = shape(from)
            .ok_or_else(|| format!("no converter for CNI result version {from} to {version}"))?;
        let mut out = Map::new();
        out.insert("cniVersion".into(), Value::String(version.into()));
        let interfaces: Vec<Value> = self
            .interfaces
            .iter()
            .enumerate()
            .map(|(i, iface)| {
                let mut o = Map::new();
                o.insert("name".into(), Value::String(iface.name.clone()));
                if !iface.mac.is_empty() {
                    o.insert("mac".into(), Value::String(iface.mac.clone()));
                }
                if to == Shape::V1
                    && let Some(mtu) = iface.mtu.filter(|m| *m != 0)
                {
                    o.insert("mtu".into(), mtu.into());
                }
                if !iface.sandbox.is_empty() {
                    o.insert("sandbox".into(), Value::String(iface.sandbox.clone()));
                }
                if to == Shape::V1
                    && let Some(ext) = self.interface_ext.get(i)
                {
                    if !ext.socket_path.is_empty() {
                        o.insert("socketPath".into(), Value::String(ext.socket_path.clone()));
                    }
                    if !ext.pci_id.is_empty() {
                        o.insert("pciID".into(), Value::String(ext.pci_id.clone()));
                    }
                }
                Value::Object(o)
            })
            .collect();
        if !interfaces.is_empty() {
            out.insert("interfaces".into(), Value::Array(interfaces));
        }
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut o = Map::new();
                if to == Shape::V04 {
                    let v = match (from_shape, &ip.version) {
                        (Shape::V04, Some(v)) => v.clone(),
                        (Shape::V04, None) => String::new(),
                        (Shape::V1, _) => if ip.address.is_ipv4() { "4" } else { "6" }.into(),
                    };
                    o.insert("version".into(), Value::String(v));
                }
                if let Some(i) = ip.interface {
                    o.insert("interface".into(), i.into());
                }
                o.insert("address".into(), Value::String(ip.address.to_string()));
                if let Some(g) = ip.gateway {
                    o.insert("gateway".into(), Value::String(g.to_string()));
                }
                Value::Object(o)
            })
            .collect();
        if !ips.is_empty() {
            out.insert("ips".into(), Value::Array(ips));
        }
        let routes: Vec<Value> = self
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut o = Map::new();
                o.insert("dst".into(), Value::String(r.dst.to_string()));
                if let Some(g) = r.gw {
                    o.insert("gw".into(), Value::String(g.to_string()));
                }
                if let Some(ext) = self.route_ext.get(i) {
                    for (k, n) in [
                        ("mtu", ext.mtu),
                        ("advmss", ext.advmss),
                        ("priority", ext.priority),
                    ] {
                        if n != 0 {
                            o.insert(k.into(), n.into());
                        }
                    }
                    for (k, n) in [("table", ext.table), ("scope", ext.scope)] {
                        if let Some(n) = n {
                            o.insert(k.into(), n.into());
                        }
                    }
                }
                Value::Object(o)
            })
            .collect();
        if !routes.is_empty() {
            out.insert("routes".into(), Value::Array(routes));
        }
        if to == Shape::V04 || !self.dns.is_empty() {
            out.insert(
                "dns".into(),
                serde_json::to_value(&self.dns).expect("dns serializes"),
            );
        }
        Ok(Value::Object(out))
    }

    /// Addresses (without prefix) of the IP configs that belong to interface `name`, or to no
    /// interface in particular.
    pub fn addresses_of(&self, name: &str) -> Vec<String> {
        let idx = self.interfaces.iter().position(|i| i.name == name);
        self.ips
            .iter()
            .filter(|ip| ip.interface.is_none() || ip.interface == idx)
            .map(|ip| ip.address.ip().to_string())
            .collect()
    }

    /// The MAC of the interface `name` inside the sandbox, if reported.
    pub fn mac_of(&self, name: &str) -> Option<&str> {
        self.interfaces
            .iter()
            .find(|i| i.name == name && !i.sandbox.is_empty())
            .or_else(|| self.interfaces.iter().find(|i| i.name == name))
            .map(|i| i.mac.as_str())
            .filter(|m| !m.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn single_config_becomes_a_list() {
        let l = NetConfList::parse(
            &json!({"cniVersion":"0.3.1","name":"n","type":"ipvlan","master":"eth1"}),
        )
        .unwrap();
        assert_eq!(l.plugins.len(), 1);
        assert_eq!(l.plugin_type(0), "ipvlan");
        let conf = l.plugin_conf(0, None);
        assert_eq!(conf["name"], "n");
        assert_eq!(conf["master"], "eth1");
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(NetConfList::parse(&json!({"name":"n","type":"x"})).is_err());
        assert!(
            NetConfList::parse(&json!({"cniVersion":"1.0.0","name":"n","plugins":[]})).is_err()
        );
        assert!(
            NetConfList::parse(&json!({"cniVersion":"1.0.0","name":"n","plugins":[{"x":1}]}))
                .is_err()
        );
        assert!(NetConfList::parse(&json!([1])).is_err());
    }

    #[test]
    fn results_convert_between_versions() {
        let legacy = json!({"cniVersion":"0.3.1","interfaces":[{"name":"eth0","mac":"aa:bb:cc:dd:ee:ff","sandbox":"/n"}],
            "ips":[{"version":"4","address":"10.1.0.5/24","gateway":"10.1.0.1","interface":0}],
            "routes":[{"dst":"0.0.0.0/0"}],"dns":{}});
        let r = CniResult::from_value(&legacy).unwrap();
        let v1 = r.to_version("1.0.0");
        assert!(v1["ips"][0].get("version").is_none());
        assert!(v1.get("dns").is_none(), "1.x omits an empty dns");
        assert_eq!(v1["cniVersion"], "1.0.0");
        // 0.x writes "dns":{} always, as libcni's 040 type does.
        assert_eq!(r.to_version("0.3.1"), legacy);
        assert_eq!(r.addresses_of("eth0"), vec!["10.1.0.5".to_string()]);
        assert_eq!(r.mac_of("eth0"), Some("aa:bb:cc:dd:ee:ff"));
    }

    #[test]
    fn ip_versions_are_copied_between_0x_and_computed_from_1x() {
        let r = CniResult::from_value(&json!({"cniVersion":"0.3.0",
            "ips":[{"version":"6","address":"10.1.0.5/24"},{"address":"fd00::5/64"}]}))
        .unwrap();
        let v04 = r.to_version("0.4.0");
        assert_eq!(v04["ips"][0]["version"], "6", "copied, even wrong");
        assert_eq!(v04["ips"][1]["version"], "", "copied, even missing");
        let up = CniResult::from_value(&r.to_version("1.1.0")).unwrap();
        let down = up.to_version("0.4.0");
        assert_eq!(down["ips"][0]["version"], "4");
        assert_eq!(down["ips"][1]["version"], "6");
    }

    #[test]
    fn the_1_1_keys_survive_where_libcni_keeps_them() {
        let v11 = json!({"cniVersion":"1.1.0",
            "interfaces":[{"name":"net1","mtu":9000,"socketPath":"/s","pciID":"0000:3b:00.2"}],
            "routes":[{"dst":"10.0.0.0/8","mtu":1400,"advmss":1360,"priority":5,"table":0,"scope":253}]});
        let r = CniResult::from_value(&v11).unwrap();
        assert_eq!(r.to_version("1.0.0")["interfaces"], v11["interfaces"]);
        // 0.x interfaces have name/mac/sandbox only; routes keep everything (one Go type).
        assert_eq!(
            r.to_version("0.3.1")["interfaces"],
            json!([{"name":"net1"}])
        );
        assert_eq!(r.to_version("0.3.1")["routes"], v11["routes"]);
        // The delegate cache keeps them too.
        let cached: CniResult = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(cached, r);
    }

    #[test]
    fn a_result_made_here_is_1_1_and_unknown_targets_are_refused() {
        let r = CniResult {
            ips: vec![IpConfig {
                version: None,
                address: "10.1.0.5/24".parse().unwrap(),
                gateway: None,
                interface: None,
            }],
            ..Default::default()
        };
        assert_eq!(r.to_version("0.3.0")["ips"][0]["version"], "4");
        assert!(r.try_to_version("0.2.0").is_err());
        assert!(r.try_to_version("2.0.0").is_err());
        // to_version never fails: a version libcni cannot convert to gets the result as held.
        assert_eq!(r.to_version("2.0.0")["cniVersion"], "1.1.0");
    }

    #[test]
    fn prev_results_are_read_in_the_configs_shape_family() {
        let prev = json!({"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.0.5/24"}]});
        let r = CniResult::from_prev_result(&prev, "0.3.1").unwrap();
        assert_eq!(r.cni_version, "0.4.0");
        assert!(CniResult::from_prev_result(&prev, "1.0.0").is_err());
        // Without a version it is the config's.
        let bare = json!({"ips":[{"address":"10.1.0.5/24"}]});
        assert_eq!(
            CniResult::from_prev_result(&bare, "1.1.0")
                .unwrap()
                .cni_version,
            "1.1.0"
        );
        assert!(CniResult::from_prev_result(&json!({"cniVersion":"9.9.9"}), "1.1.0").is_err());
        // The version alone, for callers that answer a version mismatch with its own code.
        assert_eq!(
            CniResult::prev_result_version(&prev, "0.3.0").as_deref(),
            Ok("0.4.0")
        );
        assert!(CniResult::prev_result_version(&prev, "1.1.0").is_err());
        assert!(CniResult::prev_result_version(&json!("x"), "1.1.0").is_ok());
        assert!(CniResult::from_prev_result(&json!("x"), "1.1.0").is_err());
    }

    #[test]
    fn plugin_output_without_a_version_is_at_the_configs() {
        let out = json!({"ips":[{"version":"4","address":"10.1.0.5/24"}]});
        let r = CniResult::from_plugin_output(&out, "0.4.0").unwrap();
        assert_eq!(r.cni_version, "0.4.0");
        assert!(
            CniResult::from_value(&out).is_err(),
            "0.1.0: not spoken here"
        );
        assert_eq!(
            CniResult::from_plugin_output(&Value::Null, "1.0.0")
                .unwrap()
                .to_version("1.0.0"),
            json!({"cniVersion":"1.0.0"})
        );
    }

    #[test]
    fn go_json_leniency_is_followed() {
        let r = CniResult::from_value(&json!({"cniVersion":"1.1.0","IPs":[
            {"address":"::ffff:10.1.2.3/120","gateway":"","interface":null}],
            "dns":null,"interfaces":[{"name":null}]}))
        .unwrap();
        assert_eq!(
            r.to_version("1.1.0"),
            json!({"cniVersion":"1.1.0","interfaces":[{"name":""}],"ips":[{"address":"10.1.2.3/24"}]})
        );
        for bad in [
            json!({"cniVersion":"1.1.0","ips":[{"address":"10.1.0.5"}]}),
            json!({"cniVersion":"1.1.0","ips":[{"address":"10.1.0.5/24","interface":1.0}]}),
            json!({"cniVersion":"1.1.0","routes":[{"dst":""}]}),
            json!({"cniVersion":"0.5.0"}),
        ] {
            assert!(CniResult::from_value(&bad).is_err(), "{bad}");
        }
    }
}
