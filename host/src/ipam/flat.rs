//! Whereabouts' flat file: `whereabouts.conf`, the node-wide defaults every whereabouts node has
//! (its DaemonSet writes the kubeconfig there). Whereabouts reads the first that exists of
//! `ipam.configuration_path`, `/etc/kubernetes/cni/net.d/whereabouts.d/whereabouts.conf`,
//! `/etc/cni/net.d/whereabouts.d/whereabouts.conf` and
//! `/host/etc/cni/net.d/whereabouts.d/whereabouts.conf`, and fills every key the NAD left unset
//! (or set to its zero value — `mergo.Merge`) from it. wasmcni does the same, so a node that
//! moves from whereabouts keeps what its flat file says, and the flat file's keys go through the
//! same table as the NAD's: an unknown or refused key there is an error naming the file.
//!
//! Two differences, both loud: the file must be a regular file of at most [`MAX_FLAT`] bytes,
//! and a file that cannot be parsed is an error that does not quote it (whereabouts quotes the
//! whole file, which `configuration_path` can point anywhere root can read). A missing flat file
//! is not an error: whereabouts needs one for its kubeconfig, wasmcni under its meta-plugin does
//! not (and as the IPAM plugin says what it lacks, see [`super::IpamConf::kubeconfig`]).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::Error;

/// Where whereabouts looks after `configuration_path`, in its order.
pub const DEFAULT_PATHS: [&str; 3] = [
    "/etc/kubernetes/cni/net.d/whereabouts.d/whereabouts.conf",
    "/etc/cni/net.d/whereabouts.d/whereabouts.conf",
    "/host/etc/cni/net.d/whereabouts.d/whereabouts.conf",
];

/// A flat file is a few hundred bytes; anything past this is not one.
pub const MAX_FLAT: u64 = 64 * 1024;

/// A flat file, read.
#[derive(Debug)]
pub struct Flat {
    /// Where it was found.
    pub path: PathBuf,
    /// Its keys, as written.
    pub keys: Map<String, Value>,
}

/// The flat file whereabouts would read for a NAD whose `ipam` names `configuration_path` (or
/// none), read and parsed; `None` when none of the places exists.
pub fn find(configuration_path: Option<&str>) -> Result<Option<Flat>, Error> {
    let given = configuration_path
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    let candidates = given
        .into_iter()
        .chain(DEFAULT_PATHS.iter().map(PathBuf::from));
    for path in candidates {
        // Go's `pathExists`: only "does not exist" means absent; any other stat error is a file
        // that is then opened, and that fails.
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            _ => {}
        }
        let keys = read(&path)?;
        return Ok(Some(Flat { path, keys }));
    }
    Ok(None)
}

fn read(path: &Path) -> Result<Map<String, Value>, Error> {
    let bad = |why: String| Error::Config {
        why: format!("whereabouts flat file {}: {why}", path.display()),
    };
    let bytes = crate::files::read_regular(path, MAX_FLAT).map_err(|e| bad(e.to_string()))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(bad("must hold one JSON object".into())),
        // serde's message names line and column, never the content.
        Err(e) => Err(bad(format!("not JSON: {e}"))),
    }
}

/// Whether Go's `mergo` takes the flat file's value over `v`: `v` is the zero value of its type.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        // A struct is merged field by field (see `merge`); an empty one takes everything.
        Value::Object(o) => o.is_empty(),
    }
}

/// `nad` with every key it leaves unset or zero taken from `flat`, as `mergo.Merge(&nad, flat)`
/// does: objects (whereabouts' `kubernetes` struct) are merged key by key, lists and values are
/// taken whole. Both sides must already have their keys folded to one spelling.
pub fn merge(nad: &mut Map<String, Value>, flat: Map<String, Value>) {
    for (k, fv) in flat {
        match nad.get_mut(&k) {
            Some(Value::Object(inner)) if !inner.is_empty() => {
                if let Value::Object(f) = fv {
                    merge(inner, f);
                }
            }
            Some(v) if !is_zero(v) => {}
            _ => {
                nad.insert(k, fv);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_nad_wins_and_its_zero_values_are_filled_like_mergo() {
        let mut nad = obj(json!({
            "range": "10.0.0.0/24", "exclude": [], "gateway": "",
            "kubernetes": {"kubeconfig": "/nad"}
        }));
        merge(
            &mut nad,
            obj(json!({
                "range": "10.9.0.0/16", "exclude": ["10.0.0.0/30"], "gateway": "10.0.0.1",
                "kubernetes": {"kubeconfig": "/flat", "k8s_api_root": "https://x"},
                "log_level": "debug"
            })),
        );
        assert_eq!(
            Value::Object(nad),
            json!({
                "range": "10.0.0.0/24", "exclude": ["10.0.0.0/30"], "gateway": "10.0.0.1",
                "kubernetes": {"kubeconfig": "/nad", "k8s_api_root": "https://x"},
                "log_level": "debug"
            })
        );
    }

    #[test]
    fn a_named_file_that_is_missing_falls_through_and_one_that_is_not_json_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.conf");
        // The defaults may exist on a real node; here only the named file is checked.
        if DEFAULT_PATHS.iter().all(|p| !Path::new(p).exists()) {
            assert!(find(Some(missing.to_str().unwrap())).unwrap().is_none());
        }
        let bad = dir.path().join("bad.conf");
        std::fs::write(&bad, "{\"kubernetes\": secret-token-here").unwrap();
        let e = find(Some(bad.to_str().unwrap())).unwrap_err().to_string();
        assert!(e.contains("bad.conf") && e.contains("not JSON"), "{e}");
        assert!(!e.contains("secret-token-here"), "the file is quoted: {e}");
        let good = dir.path().join("good.conf");
        std::fs::write(&good, r#"{"kubernetes": {"kubeconfig": "/k"}}"#).unwrap();
        let f = find(Some(good.to_str().unwrap())).unwrap().unwrap();
        assert_eq!(f.path, good);
        assert_eq!(f.keys["kubernetes"]["kubeconfig"], "/k");
    }
}
