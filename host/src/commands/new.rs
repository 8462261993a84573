//! `eddy new`: a handler project from a template.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct NewArgs {
    /// The function's name (also the project folder's).
    pub name: String,
    /// The language to write it in.
    #[arg(long, value_enum)]
    pub lang: eddy::project::Language,
    /// Where to create the project folder.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

/// `eddy new`.
pub fn run(args: NewArgs) -> anyhow::Result<std::process::ExitCode> {
    let sdk = eddy::project::sdk_dir()?;
    let dir = eddy::project::scaffold::new_project(&args.dir, &args.name, args.lang, &sdk)?;
    println!("created {} ({} handler, manifest {}.toml, role.json, build.sh)", dir.display(), args.lang.name(), args.name);
    let functions = eddy::project::build::default_out(&dir)?;
    println!("next: eddy build {}   # builds it into {}", dir.display(), functions.display());
    println!("then: eddy run --functions {}   # runs it; eddy put {}-input -d '{{\"amount\": 4}}' feeds it",
        functions.display(), args.name);
    Ok(std::process::ExitCode::SUCCESS)
}
