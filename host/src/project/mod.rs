//! Handler projects on the developer's machine: `eddy new` scaffolds one,
//! `eddy build` builds one into the watched folder.
//!
//! - [`scaffold`]: the files of a new project, per language;
//! - [`build`]: finding the project's language and toolchain, building, and
//!   copying the component, its manifest and its role into the functions folder.
//!
//! The builds themselves are the SDK's scripts (`guest-sdk/<language>/build.sh`),
//! which the examples use too: one recipe per language.

pub mod build;
pub mod scaffold;

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
/// `EDDY_SDK`: the SDKs and their build scripts live there.
pub fn sdk_dir() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("EDDY_SDK") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk"),
    };
    let dir = dir.canonicalize().with_context(|| {
        format!(
            "the Eddy SDK folder {} is missing: set EDDY_SDK to the guest-sdk folder of an Eddy checkout",
            dir.display()
        )
    })?;
    Ok(dir)
}

/// The WIT contract beside the SDK (`wit/` of the checkout).
pub fn wit_dir(sdk: &Path) -> PathBuf {
    sdk.parent().map_or_else(|| sdk.join("wit"), |root| root.join("wit"))
}
