//! Exec'ing a plugin from CNI_PATH with the spec's environment, as libcni does.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::{Call, Error};
use crate::cni::Command;
use crate::cni::types::CniResult;

/// A delegate that runs longer than this is killed: the runtime's own timeout is near.
const EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// Run plugin `plugin` with `verb` on `ifname`; the parsed result for ADD.
pub async fn run(
    call: &Call,
    verb: Command,
    network: &str,
    plugin: &str,
    conf: &Value,
    ifname: &str,
) -> Result<Option<CniResult>, Error> {
    if plugin.contains('/') || plugin.is_empty() {
        return Err(Error::Config {
            network: network.into(),
            why: format!("plugin type {plugin:?} is not a plain name"),
        });
    }
    let bin = call
        .path
        .iter()
        .map(|d| d.join(plugin))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::NotFound {
            plugin: plugin.into(),
            path: call
                .path
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
        })?;
    let exec_err = |source| Error::Exec {
        plugin: plugin.into(),
        source,
    };
    let mut cmd = tokio::process::Command::new(&bin);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CNI_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("CNI_COMMAND", verb.as_str())
        .env("CNI_CONTAINERID", &call.container_id)
        .env("CNI_IFNAME", ifname)
        .env("CNI_ARGS", call.args_for(ifname).raw)
        .env(
            "CNI_PATH",
            std::env::join_paths(&call.path).unwrap_or_default(),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(ns) = &call.netns {
        cmd.env("CNI_NETNS", ns);
    }
    let mut child = cmd.spawn().map_err(exec_err)?;
    let stdin = serde_json::to_vec(conf).expect("config serializes");
    let mut pipe = child.stdin.take().expect("piped stdin");
    pipe.write_all(&stdin).await.map_err(exec_err)?;
    drop(pipe);
    let out = tokio::time::timeout(EXEC_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| {
            exec_err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer in {EXEC_TIMEOUT:?}"),
            ))
        })?
        .map_err(exec_err)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.trim().is_empty() {
        tracing::info!("{plugin} {} stderr: {}", verb.as_str(), stderr.trim());
    }
    let step = format!("{plugin} {}", verb.as_str());
    if !out.status.success() {
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        return Err(Error::Plugin {
            network: network.into(),
            step,
            code: v.get("code").and_then(Value::as_u64).unwrap_or(999) as u32,
            msg: v
                .get("msg")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("exited with {}", out.status)),
            details: v
                .get("details")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| stderr.trim().to_string()),
        });
    }
    if verb != Command::Add {
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| Error::BadOutput {
        plugin: plugin.into(),
        why: format!("not JSON: {e}"),
    })?;
    let version = conf
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    CniResult::from_plugin_output(&v, crate::cni::declared_version(version))
        .map(Some)
        .map_err(|why| Error::BadOutput {
            plugin: plugin.into(),
            why,
        })
}
