//! wasmcni's own network config (`PluginConf::parse`, stdin of every CNI call) and the conflists it
//! reads (`NetConfList::parse`, then `plugin_conf` for each plugin, with the input's prevResult
//! read by `CniResult::from_prev_result`),
//! plus the whereabouts IPAM section of each plugin (`IpamConf::parse`, `range`, `pool_name`).
//!
//! The input is the raw stdin bytes. Properties: nothing panics; an accepted config has a
//! supported cniVersion; a plugin's config as handed on is a single config that parses again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wasmcni::cni::types::{CniResult, NetConfList};
use wasmcni::config::PluginConf;
use wasmcni::ipam::IpamConf;

fuzz_target!(|data: &[u8]| {
    if let Ok(conf) = PluginConf::parse(data) {
        assert!(wasmcni::cni::supports(&conf.cni_version));
        if let Some(prev) = &conf.prev_result
            && let Ok(r) = CniResult::from_prev_result(prev, &conf.cni_version)
        {
            let _ = r.to_version(&conf.cni_version);
        }
    }
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(list) = NetConfList::parse(&value) else {
        return;
    };
    let prev = value
        .get("prevResult")
        .and_then(|v| CniResult::from_prev_result(v, &list.cni_version).ok());
    for i in 0..list.plugins.len() {
        assert!(!list.plugin_type(i).is_empty());
        let conf = list.plugin_conf(i, prev.as_ref());
        assert_eq!(conf["name"].as_str(), Some(list.name.as_str()));
        assert_eq!(conf["cniVersion"].as_str(), Some(list.cni_version.as_str()));
        assert_eq!(conf.get("prevResult").is_some(), prev.is_some());
        // Handed to a plugin, the config is a single config again (unless the plugin itself
        // carries a "plugins" key, which makes it look like a list).
        if list.plugins[i].get("plugins").is_none() {
            let again = NetConfList::parse(&conf).expect("a plugin's config parses as a config");
            assert_eq!(again.plugins.len(), 1);
            assert_eq!(again.name, list.name);
        }
        if let Some(ipam) = list.plugins[i].get("ipam")
            && let Ok(ipam) = IpamConf::parse(ipam)
        {
            let _ = ipam.policy();
            if let Ok(range) = ipam.range() {
                let _ = ipam.pool_name(&range);
                let (first, last) = range.bounds();
                assert!(first <= last);
                assert!(last <= range.last_offset());
                for offset in [0, first, last, range.last_offset()] {
                    let _ = range.allocatable(offset);
                    let _ = range.exclusion_end(offset);
                    let _ = range.address(offset);
                }
            }
        }
    }
});
