//! Results converted between CNI versions exactly as libcni v1.3.1 converts them: every version
//! libcni has a result type for, 0.1.0 to 1.1.0.
//!
//! Every fixture in `tests/e2e/fixtures/results/` is read and written by
//! `wasmcni::cni::types::CniResult` and by libcni itself (`tests/.tools/bin/cniconvert`, built
//! by `tests/tools/build.sh` from libcni's own packages), in the three ways libcni reads a
//! result, for every version wasmcni speaks:
//!
//! - as bytes (`create.CreateFromBytes`, libcni's cache) × to each version, and to one libcni
//!   has no converter for;
//! - as a plugin's stdout for a config at each version (`invoke.ExecPluginWithResult`);
//! - as the `prevResult` of a config at each version (`version.ParsePrevResult`).
//!
//! Both must produce the same JSON value, or both must refuse. A mismatch is reported field by
//! field (`ips[1].version: libcni "4", wasmcni "6"`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use wasmcni::cni::types::CniResult;

const VERSIONS: [&str; 7] = [
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn cniconvert() -> PathBuf {
    let tool = root().join("tests/.tools/bin/cniconvert");
    assert!(
        tool.is_file(),
        "{} is missing: libcni's converter is the reference these tests compare with. \
         Run `bash tests/tools/build.sh` (tests/setup.sh does) and run the tests again.",
        tool.display()
    );
    tool
}

/// libcni's answer: the converted result, or its error.
fn libcni(tool: &Path, file: &Path, args: &[&str]) -> Result<Value, String> {
    let out = Command::new(tool)
        .args(args)
        .stdin(std::fs::File::open(file).expect("fixture opens"))
        .output()
        .expect("cniconvert runs");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("cniconvert prints JSON"))
    } else {
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "cniconvert {args:?} < {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Field-by-field differences of two JSON values, one line each.
fn diff(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                let p = format!("{path}.{k}");
                match g.get(k) {
                    Some(gv) => diff(&p, wv, gv, out),
                    None => out.push(format!("{p}: libcni {wv}, wasmcni has no such key")),
                }
            }
            for (k, gv) in g {
                if !w.contains_key(k) {
                    out.push(format!("{path}.{k}: libcni has no such key, wasmcni {gv}"));
                }
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            for i in 0..w.len().max(g.len()) {
                let p = format!("{path}[{i}]");
                match (w.get(i), g.get(i)) {
                    (Some(wv), Some(gv)) => diff(&p, wv, gv, out),
                    (Some(wv), None) => out.push(format!("{p}: libcni {wv}, wasmcni none")),
                    (None, Some(gv)) => out.push(format!("{p}: libcni none, wasmcni {gv}")),
                    (None, None) => {}
                }
            }
        }
        (w, g) if w != g => out.push(format!("{path}: libcni {w}, wasmcni {g}")),
        _ => {}
    }
}

fn fixtures() -> Vec<PathBuf> {
    let dir = root().join("tests/e2e/fixtures/results");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "fixtures missing in {}", dir.display());
    files
}

/// One comparison: what it was, libcni's answer and ours.
struct Case {
    what: String,
    libcni: Result<Value, String>,
    ours: Result<Value, String>,
}

fn cases() -> Vec<Case> {
    let tool = cniconvert();
    let mut cases = Vec::new();
    for file in fixtures() {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let input: Value = serde_json::from_slice(&std::fs::read(&file).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let read = CniResult::from_value(&input);
        for to in VERSIONS.iter().copied().chain(["", "9.9.9"]) {
            cases.push(Case {
                what: format!("cniconvert {to} < {name}"),
                libcni: libcni(&tool, &file, &[to]),
                ours: read.clone().and_then(|r| r.try_to_version(to)),
            });
        }
        for conf in VERSIONS {
            cases.push(Case {
                what: format!("cniconvert -exec {conf} {conf} < {name}"),
                libcni: libcni(&tool, &file, &["-exec", conf, conf]),
                ours: CniResult::from_plugin_output(&input, conf)
                    .and_then(|r| r.try_to_version(conf)),
            });
            // As read, unconverted: prevResult keeps its own version.
            cases.push(Case {
                what: format!("cniconvert -prev {conf} - < {name}"),
                libcni: libcni(&tool, &file, &["-prev", conf, "-"]),
                ours: CniResult::from_prev_result(&input, conf)
                    .and_then(|r| r.try_to_version(&r.cni_version)),
            });
        }
    }
    cases
}

#[test]
fn results_convert_between_every_version_exactly_as_libcni_does() {
    let cases = cases();
    let mut failures = Vec::new();
    let (mut same, mut refused, mut legacy) = (0, 0, 0);
    for c in &cases {
        match (&c.libcni, &c.ours) {
            (Ok(want), Ok(got)) => {
                let mut d = Vec::new();
                diff("", want, got, &mut d);
                if d.is_empty() {
                    same += 1;
                    legacy += usize::from(c.what.contains("0.1.0") || c.what.contains("0.2.0"));
                } else {
                    failures.push(format!("{}:\n    {}", c.what, d.join("\n    ")));
                }
            }
            (Err(_), Err(_)) => refused += 1,
            (Ok(want), Err(e)) => failures.push(format!(
                "{}: libcni accepts ({want}), wasmcni refuses: {e}",
                c.what
            )),
            (Err(e), Ok(got)) => failures.push(format!(
                "{}: libcni refuses ({e}), wasmcni accepts: {got}",
                c.what
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} conversions differ from libcni:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // The table must exercise both outcomes, and every shape in and out.
    assert!(same >= 540, "only {same} conversions compared equal");
    assert!(refused >= 600, "only {refused} refusals compared");
    assert!(
        legacy >= 150,
        "only {legacy} equal conversions to, from or at 0.1.0/0.2.0"
    );
    eprintln!(
        "{same} equal ({legacy} to, from or at 0.1.0/0.2.0), {refused} refused by both, of {}",
        cases.len()
    );
}

/// Every fixture written at a version is read back by libcni at that version without change
/// of meaning: the fixtures are what plugins of that version print.
#[test]
fn each_fixture_is_a_result_libcni_reads_at_its_own_version() {
    let tool = cniconvert();
    for file in fixtures() {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let Some(v) = VERSIONS
            .iter()
            .find(|v| name.ends_with(&format!("-{v}.json")))
        else {
            continue;
        };
        let want = libcni(&tool, &file, &[v]);
        if name.starts_with("refused-") {
            assert!(want.is_err(), "{name}: libcni accepts it: {want:?}");
        } else {
            let got = want.unwrap_or_else(|e| panic!("{name}: libcni refuses it: {e}"));
            assert_eq!(got["cniVersion"], *v, "{name}");
        }
    }
}
