//! Handler projects on the developer's machine: `eddy new` scaffolds one,
//! `eddy build` builds one into the watched folder.
//!
//! - [`scaffold`]: the files of a new project, per language;
//! - [`build`]: finding the project's language and toolchain, building, and
//!   copying the component, its manifest and its role into the functions folder;
//! - [`watch`]: `eddy watch`, which changes call for a new build.
//!
//! The builds themselves are the SDK's scripts (`guest-sdk/<language>/build.sh`),
//! which the examples use too: one recipe per language.

pub mod build;
pub mod scaffold;
pub mod watch;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The languages a handler project can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    /// The typed world, with the `eddy-guest` crate.
    Rust,
    /// The JSON world, with guest-sdk/js (jco componentize).
    Js,
    /// The JSON world, with guest-sdk/python (componentize-py).
    Python,
    /// The typed world, with wit-bindgen's C bindings and clang.
    C,
    /// A WASI command (GOOS=wasip1): event on stdin, response on stdout.
    Go,
}

impl Language {
    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Js => "js",
            Language::Python => "python",
            Language::C => "c",
            Language::Go => "go",
        }
    }
}

/// The `guest-sdk` folder of the Eddy checkout this binary was built from, or
/// `EDDY_SDK`: the SDKs and their build scripts live there. `EDDY_SDK` may name
/// the checkout's root or its `guest-sdk` folder.
pub fn sdk_dir() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("EDDY_SDK") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk"),
    };
    let dir = dir.canonicalize().with_context(|| {
        format!(
            "the Eddy SDK folder {} is missing: set EDDY_SDK to an Eddy checkout (or its guest-sdk folder)",
            dir.display()
        )
    })?;
    resolve_sdk(&dir)
}

/// The SDK folder named by `dir`: `dir` itself, or its `guest-sdk` when `dir` is
/// a checkout's root.
fn resolve_sdk(dir: &Path) -> anyhow::Result<PathBuf> {
    let is_sdk = |d: &Path| d.join("rust/build.sh").is_file();
    if is_sdk(dir) {
        return Ok(dir.to_path_buf());
    }
    let nested = dir.join("guest-sdk");
    anyhow::ensure!(
        is_sdk(&nested),
        "{} is not an Eddy SDK: it has neither rust/build.sh nor guest-sdk/rust/build.sh; \
         set EDDY_SDK to an Eddy checkout (or its guest-sdk folder)",
        dir.display()
    );
    Ok(nested)
}

/// The WIT contract beside the SDK (`wit/` of the checkout).
pub fn wit_dir(sdk: &Path) -> PathBuf {
    sdk.parent().map_or_else(|| sdk.join("wit"), |root| root.join("wit"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_is_found_from_the_checkout_root_or_its_guest_sdk_folder() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("checkout");
        let sdk = root.join("guest-sdk");
        assert_eq!(resolve_sdk(&root).expect("root"), sdk);
        assert_eq!(resolve_sdk(&sdk).expect("guest-sdk"), sdk);
        assert_eq!(wit_dir(&sdk), root.join("wit"));
        let error = resolve_sdk(&root.join("wit")).expect_err("not an SDK").to_string();
        assert!(error.contains("is not an Eddy SDK"), "{error}");
    }
}
