//! `eddy watch`: builds a handler project into the functions folder, then again
//! each time its sources change. A running host swaps each good build in live
//! and keeps the checkpoints; a build that fails is shown and changes nothing,
//! and neither does one the host refuses to load (which is shown too).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::DataDirArg;
use eddy::project::build::Built;
use eddy::project::watch::ProjectWatch;

#[derive(clap::Args)]
pub struct WatchArgs {
    /// The project folder (its language is told by its files).
    #[arg(default_value = ".")]
    pub project: PathBuf,
    /// The functions folder to build into, the one `eddy run` watches (default:
    /// `functions` beside the project's folder, where `eddy new` made it).
    #[arg(long, env = "EDDY_FUNCTIONS")]
    pub out: Option<PathBuf>,
    /// The running host's admin address, to say whether it took each build
    /// (default: the one the host running on the data directory wrote there,
    /// else 127.0.0.1:8700).
    #[arg(long, env = "EDDY_ADMIN_ADDR")]
    pub admin: Option<SocketAddr>,
    #[command(flatten)]
    pub data_dir: DataDirArg,
}

/// How long to wait for the host to load a build before saying it has not.
const LOAD_PATIENCE: Duration = Duration::from_secs(120);

pub fn run(args: WatchArgs) -> anyhow::Result<std::process::ExitCode> {
    let sdk = eddy::project::sdk_dir()?;
    let out = match &args.out {
        Some(out) => out.clone(),
        None => eddy::project::build::default_out(&args.project)?,
    };
    let watch = ProjectWatch::start(&args.project)?;
    let admin = super::admin_address(args.admin, &args.data_dir.data_dir)?;
    println!("watching {} (Ctrl-C to stop); building into {}", args.project.display(), out.display());
    build_once(&args.project, &out, &sdk, admin);
    while let Some(changed) = watch.next_change() {
        let names: Vec<String> = changed.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
        println!("changed: {}", names.join(", "));
        build_once(&args.project, &out, &sdk, admin);
    }
    anyhow::bail!("the watch on {} stopped", args.project.display())
}

/// One build, and what became of it: errors are printed, never fatal.
fn build_once(project: &Path, out: &Path, sdk: &Path, admin: SocketAddr) {
    let started = Instant::now();
    match eddy::project::build::build(project, out, sdk) {
        Ok(built) => {
            println!("built {} in {:.1} s", built.component.display(), started.elapsed().as_secs_f64());
            report_load(&built, admin);
        }
        Err(error) => {
            eprintln!("build failed: {error:#}");
            println!("build failed; the version running before (if any) keeps running. Waiting for the next change.");
        }
    }
}

/// Waits for the host to run the new build, or to refuse it, and says which.
fn report_load(built: &Built, admin: SocketAddr) {
    let Some(name) = built.component.file_stem().map(|n| n.to_string_lossy().into_owned()) else { return };
    let Ok(bytes) = std::fs::read(&built.component) else { return };
    let digest = eddy::runtime::content_digest(&bytes);
    let url = format!("http://{admin}/status");
    let function = || {
        ureq::get(&url)
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_json::<eddy::status::StatusReport>().ok())
            .and_then(|report| report.functions.into_iter().find(|f| f.name == name))
    };
    let started = Instant::now();
    // An error shown before this build is not this build's.
    let error_before = function().and_then(|f| f.error);
    loop {
        let waited = started.elapsed();
        match function() {
            Some(f) if f.digest.as_deref() == Some(digest.as_str()) && f.error.is_none() => {
                println!("{name}: the host runs the new version ({}), {}", &digest[..12], f.state.as_str());
                return;
            }
            // The host refused these files and keeps the version before.
            Some(f) if f.digest.as_deref() != Some(digest.as_str())
                && f.error.is_some()
                && (f.error != error_before || waited > REFUSAL_SETTLES) =>
            {
                let error = f.error.unwrap_or_default();
                println!("{name}: the host did not load the new version: {error}; the version before keeps running");
                return;
            }
            Some(_) if waited > LOAD_PATIENCE => {
                println!("{name}: the host has not loaded the new version yet");
                return;
            }
            None if waited > NO_HOST_PATIENCE => {
                println!("no host at {admin} runs {name} (yet); the build is in {}", built.component.display());
                return;
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// How long an error shown before the build must stay before it counts as
/// the host's answer to this build too (the same mistake made again).
const REFUSAL_SETTLES: Duration = Duration::from_secs(3);
/// How long to look for a host that runs the function at all.
const NO_HOST_PATIENCE: Duration = Duration::from_secs(5);
