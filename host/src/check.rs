//! `eddy run --check`: everything `eddy run` would load, validated without
//! running it: each function's manifest, component and role, every role file,
//! and whether a role can read its source when the source's ARN is known
//! without asking the service (local streams, ARNs in the manifest).

use std::collections::BTreeSet;
use std::path::Path;

use crate::manifest::SourceRef;
use crate::role::{self, policy::Policy};
use crate::runtime::Runtime;

/// What the check found about one function or role file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `functions/NAME` or `roles/NAME.json`.
    pub subject: String,
    pub problem: Option<String>,
    /// What was checked, for the operator (world, role, source).
    pub summary: String,
}

/// Checks the functions folder. Compiling components is the slow part; the
/// runtime's compile cache keeps the result for the next `eddy run`.
pub fn check_functions(functions_dir: &Path, runtime: &Runtime) -> anyhow::Result<Vec<Finding>> {
    let files = crate::registry::scan(functions_dir, "wasm", "toml")
        .map_err(|e| anyhow::anyhow!("cannot read the functions folder {}: {e}", functions_dir.display()))?;
    let names: BTreeSet<String> =
        files.keys().filter_map(|path| path.file_stem().and_then(|s| s.to_str()).map(str::to_owned)).collect();
    let roles_dir = functions_dir.join("roles");
    let mut findings: Vec<Finding> = names.iter().map(|name| check_function(functions_dir, &roles_dir, name, runtime)).collect();
    findings.extend(check_role_files(&roles_dir));
    Ok(findings)
}

fn check_function(functions_dir: &Path, roles_dir: &Path, name: &str, runtime: &Runtime) -> Finding {
    let subject = format!("functions/{name}");
    let result = (|| -> anyhow::Result<String> {
        let manifest_path = functions_dir.join(format!("{name}.toml"));
        let wasm_path = functions_dir.join(format!("{name}.wasm"));
        let text = std::fs::read_to_string(&manifest_path).map_err(|e| anyhow::anyhow!("{name}.toml: {e}"))?;
        let manifest = crate::function::parse_manifest(name, &text)?;
        let bytes = std::fs::read(&wasm_path).map_err(|e| anyhow::anyhow!("{name}.wasm: {e}"))?;
        let component = crate::function::load_component(runtime, &format!("{name}.wasm"), &bytes)?;
        let policy = manifest.role.as_deref().and_then(|r| std::fs::read_to_string(role::policy_path(roles_dir, r)).ok());
        let role = crate::function::resolve_role(name, &manifest, policy.as_deref(), roles_dir)?;
        let source = &manifest.event_source.source;
        let source_arn = static_source_arn(source);
        role.check_mapping(name, &manifest.event_source, source_arn.as_deref())?;
        let source_note = match source_arn {
            Some(_) => "readable by the role",
            None => "access checked when the stream is described",
        };
        Ok(format!("{}, role {}, source {} ({source_note})", component.world.name(), role.name, source.id()))
    })();
    match result {
        Ok(summary) => Finding { subject, problem: None, summary },
        Err(error) => Finding { subject, problem: Some(format!("{error:#}")), summary: String::new() },
    }
}

/// Every role file parses, whether a function names it or not.
fn check_role_files(roles_dir: &Path) -> Vec<Finding> {
    let mut files: Vec<_> = crate::registry::scan(roles_dir, "json", "json").unwrap_or_default().into_keys().collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let subject = format!("roles/{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("?"));
            match std::fs::read_to_string(&path).map_err(|e| e.to_string()).and_then(|t| Policy::parse(&t).map_err(|e| e.to_string())) {
                Ok(policy) => {
                    let n = policy.statements().len();
                    Finding { subject, problem: None, summary: format!("{n} statement{}", if n == 1 { "" } else { "s" }) }
                }
                Err(error) => Finding { subject, problem: Some(error), summary: String::new() },
            }
        })
        .collect()
}

/// The source's ARN, when the manifest alone says it.
fn static_source_arn(source: &SourceRef) -> Option<String> {
    match source {
        SourceRef::Local { stream, .. } => Some(crate::source::local::stream_arn(stream)),
        SourceRef::Kinesis { stream: crate::manifest::KinesisStream::Arn(arn), .. } => Some(arn.clone()),
        SourceRef::Dynamodb { stream: crate::manifest::DynamodbStream::StreamArn(arn), .. } => Some(arn.clone()),
        _ => None,
    }
}


