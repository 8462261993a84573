//! `eddy new NAME --lang LANG`: a folder with a handler that decodes, validates
//! and reports failures, its manifest (a local stream `NAME-input`), its
//! execution role, and a `build.sh` that runs `eddy build`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::Language;

/// The files of a new project, as (path in the folder, text with `{{name}}` and
/// `{{sdk}}` to fill in).
fn files(language: Language) -> Vec<(&'static str, &'static str)> {
    match language {
        Language::Rust => vec![
            ("Cargo.toml", include_str!("templates/rust/Cargo.toml")),
            ("src/lib.rs", include_str!("templates/rust/lib.rs")),
        ],
        Language::Js => vec![("handler.js", include_str!("templates/js/handler.js"))],
        Language::Python => vec![("handler.py", include_str!("templates/python/handler.py"))],
        Language::C => vec![("handler.c", include_str!("templates/c/handler.c"))],
        Language::Go => vec![("go.mod", include_str!("templates/go/go.mod")), ("main.go", include_str!("templates/go/main.go"))],
    }
}

const MANIFEST: &str = r#"# {{name}}: what Eddy runs, and on what (see the manifest table in Eddy's README).
Role = "{{name}}"  # roles/{{name}}.json: what the handler may do besides reading its stream
Timeout = 3        # seconds
MemorySize = 128   # MB

[EventSource]
Type = "Local"
Stream = "{{name}}-input"
CreateStream = true   # made on the host's first start; without it a missing stream is an error
BatchSize = 100
# The handler names the records it failed (batchItemFailures); the records
# before the first failed one are done, and the batch is retried from it.
FunctionResponseTypes = ["ReportBatchItemFailures"]
# A failing batch is retried twice (three attempts in all) while the shard
# waits; then its records from the first failed one on are given up on: their
# failure record (stream, shard, sequence numbers) goes to the destination below
# and the shard moves on. Lambda's default, -1, retries until the batch
# succeeds, holding the shard back for as long as it fails.
MaximumRetryAttempts = 2

# Failure records of records given up on: one JSON file each, in this folder.
[EventSource.DestinationConfig.OnFailure]
Destination = "{{dir}}/failures/"
"#;

/// The execution role: reading its own source, nothing else.
const ROLE: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "ReadTheSource",
      "Effect": "Allow",
      "Action": [
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:GetRecords",
        "kinesis:GetShardIterator",
        "kinesis:ListShards"
      ],
      "Resource": "arn:aws:kinesis:local:000000000000:stream/{{name}}-input"
    }
  ]
}
"#;

const BUILD_SCRIPT: &str = "#!/bin/sh\n# Builds {{name}} into the watched folder: `functions` beside this project's\n# folder (or EDDY_FUNCTIONS, or --out DIR), where `eddy run` started there looks.\nexec eddy build \"$(dirname \"$0\")\" \"$@\"\n";

/// `text` as it may stand inside a TOML basic string.
fn toml_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Whether `name` can be a function's name: it becomes file names and an ARN.
fn valid_name(name: &str) -> bool {
    // Lambda's rule, and a letter first: the name also names the language's
    // package or module.
    crate::names::is_function_name(name) && name.starts_with(|c: char| c.is_ascii_alphabetic())
}

/// Writes the project `name` into `parent/name`; refuses to touch an existing folder.
pub fn new_project(parent: &Path, name: &str, language: Language, sdk: &Path) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(
        valid_name(name),
        "{name:?} cannot name a function: use 1 to 64 letters, digits, '-' or '_', starting with a letter"
    );
    let dir = parent.join(name);
    anyhow::ensure!(!dir.exists(), "{} exists already; choose another name or folder", dir.display());
    // The failure records go into the project: found by absolute path, since the
    // manifest is copied into the functions folder and read by a host elsewhere.
    let absolute = std::path::absolute(&dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{sdk}}", &sdk.display().to_string())
            .replace("{{dir}}", &toml_escape(&absolute.display().to_string()))
    };
    let mut written = files(language);
    written.push(("role.json", ROLE));
    written.push(("build.sh", BUILD_SCRIPT));
    let manifest_path = format!("{name}.toml");
    for (path, text) in written.iter().copied().chain([(manifest_path.as_str(), MANIFEST)]) {
        let target = dir.join(path);
        if let Some(folder) = target.parent() {
            std::fs::create_dir_all(folder).with_context(|| format!("cannot create {}", folder.display()))?;
        }
        std::fs::write(&target, fill(text)).with_context(|| format!("cannot write {}", target.display()))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("build.sh"), std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_gets_a_handler_a_manifest_a_role_and_a_build_script() {
        let parent = tempfile::tempdir().expect("tempdir");
        for language in [Language::Rust, Language::Js, Language::Python, Language::C, Language::Go] {
            let name = format!("orders-{}", language.name());
            let dir = new_project(parent.path(), &name, language, Path::new("/sdk")).expect("scaffolded");
            let manifest = std::fs::read_to_string(dir.join(format!("{name}.toml"))).expect("manifest");
            let parsed = crate::manifest::Manifest::parse(&manifest).expect("a valid manifest");
            assert_eq!(parsed.role.as_deref(), Some(name.as_str()));
            // A bad record is retried a few times, then goes to a destination in
            // the project, rather than holding its shard forever.
            let source = &parsed.event_source;
            assert_eq!(source.maximum_retry_attempts, Some(2));
            let destination = source.on_failure.as_ref().map(|o| &o.destination);
            let expected = std::path::absolute(&dir).expect("absolute").join("failures/");
            assert!(
                matches!(destination, Some(crate::manifest::Destination::Directory(d)) if *d == expected),
                "{destination:?}"
            );
            assert_eq!(source.source, crate::manifest::SourceRef::Local { stream: crate::manifest::StreamName::parse(&format!("{name}-input")).expect("a stream name"), create: true });
            let role = std::fs::read_to_string(dir.join("role.json")).expect("role");
            crate::role::policy::Policy::parse(&role).expect("a valid policy");
            assert!(std::fs::read_to_string(dir.join("build.sh")).expect("build.sh").contains("eddy build"));
            for (path, _) in files(language) {
                let text = std::fs::read_to_string(dir.join(path)).expect("file");
                assert!(!text.contains("{{"), "{path} is filled in");
            }
        }
        let again = new_project(parent.path(), "orders-go", Language::Go, Path::new("/sdk"));
        assert!(again.expect_err("exists").to_string().contains("exists already"));
        assert!(new_project(parent.path(), "../escape", Language::Go, Path::new("/sdk")).is_err());
    }
}
