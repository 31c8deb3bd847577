//! Kubernetes names as values: `namespace/name` parsed, validated and joined in one place.
//!
//! Every name that goes into an API path is one of these first — a pod from CNI_ARGS, a NAD a
//! guest chose, a ConfigMap from the config — so a name like `fnet?watch=true` or `../../etc`
//! never reaches a request.

use std::fmt;

/// `namespace/name` of a namespaced object: the namespace a DNS-1123 label, the name a DNS-1123
/// subdomain (what the API server accepts for pods, NADs and ConfigMaps).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    namespace: String,
    name: String,
}

/// A name the API server would refuse, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a valid Kubernetes {what}: {why}")]
pub struct InvalidName {
    /// The text as given (clamped to 80 bytes).
    pub text: String,
    /// `namespace`, `name` or `namespace/name`.
    pub what: &'static str,
    /// What rule it breaks.
    pub why: &'static str,
}

impl ObjectRef {
    /// `namespace` and `name`, each validated.
    pub fn new(namespace: &str, name: &str) -> Result<Self, InvalidName> {
        label(namespace, "namespace")?;
        subdomain(name, "name")?;
        Ok(ObjectRef {
            namespace: namespace.into(),
            name: name.into(),
        })
    }

    /// `NAMESPACE/NAME`, or `NAME` in `default_namespace`.
    pub fn parse(text: &str, default_namespace: &str) -> Result<Self, InvalidName> {
        match text.split_once('/') {
            Some((ns, name)) => ObjectRef::new(ns, name).map_err(|e| InvalidName {
                text: clamp(text),
                what: "namespace/name",
                ..e
            }),
            None => ObjectRef::new(default_namespace, text),
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

fn clamp(text: &str) -> String {
    let mut end = text.len().min(80);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// RFC 1123 label: at most 63 of `[a-z0-9-]`, starting and ending alphanumeric.
fn label(s: &str, what: &'static str) -> Result<(), InvalidName> {
    let bad = |why| InvalidName {
        text: clamp(s),
        what,
        why,
    };
    if s.is_empty() {
        return Err(bad("it is empty"));
    }
    if s.len() > 63 {
        return Err(bad("it is longer than 63 characters"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(bad("only lower-case letters, digits and '-' are allowed"));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(bad("it must start and end with a letter or digit"));
    }
    Ok(())
}

/// RFC 1123 subdomain: at most 253 characters, labels separated by '.'.
fn subdomain(s: &str, what: &'static str) -> Result<(), InvalidName> {
    if s.len() > 253 {
        return Err(InvalidName {
            text: clamp(s),
            what,
            why: "it is longer than 253 characters",
        });
    }
    for part in s.split('.') {
        label(part, what).map_err(|e| InvalidName {
            text: clamp(s),
            ..e
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_parsed_joined_and_defaulted() {
        let r = ObjectRef::parse("team-a/macvlan.conf", "default").unwrap();
        assert_eq!((r.namespace(), r.name()), ("team-a", "macvlan.conf"));
        assert_eq!(r.to_string(), "team-a/macvlan.conf");
        let r = ObjectRef::parse("net1", "kube-system").unwrap();
        assert_eq!(r.to_string(), "kube-system/net1");
    }

    #[test]
    fn what_the_api_server_refuses_never_becomes_a_path() {
        for bad in [
            "fnet?watch=true",
            "kube-system/configmaps/x",
            "../../etc",
            "a/",
            "/b",
            "UPPER/x",
            "ns/-x",
            "ns/x..y",
            "",
        ] {
            assert!(
                ObjectRef::parse(bad, "default").is_err(),
                "{bad:?} accepted"
            );
        }
        let long = "n".repeat(64);
        assert!(ObjectRef::new(&long, "x").is_err());
        assert!(ObjectRef::new("ns", &"a".repeat(254)).is_err());
        let huge = "x".repeat(4 << 20);
        let e = ObjectRef::new("ns", &huge).unwrap_err();
        assert!(e.to_string().len() < 200, "the message stays short");
    }
}
