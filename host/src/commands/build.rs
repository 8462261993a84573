//! `eddy build`: a handler project built into the functions folder.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct BuildArgs {
    /// The project folder (its language is told by its files).
    #[arg(default_value = ".")]
    pub project: PathBuf,
    /// The functions folder to build into, the one `eddy run` watches (default:
    /// `functions` beside the project's folder, where `eddy new` made it).
    #[arg(long, env = "EDDY_FUNCTIONS")]
    pub out: Option<PathBuf>,
}

/// `eddy build`.
pub fn run(args: BuildArgs) -> anyhow::Result<std::process::ExitCode> {
    let sdk = eddy::project::sdk_dir()?;
    let out = match args.out {
        Some(out) => out,
        None => eddy::project::build::default_out(&args.project)?,
    };
    let built = eddy::project::build::build(&args.project, &out, &sdk)?;
    println!("built {} ({})", built.component.display(), built.language.name());
    println!("manifest {}", built.manifest.display());
    if let Some(role) = &built.role {
        println!("role {}", role.display());
    }
    let watched = std::path::absolute(&out).unwrap_or(out);
    println!("a host picks it up from {}: eddy run --functions {}", watched.display(), watched.display());
    Ok(std::process::ExitCode::SUCCESS)
}
