//! The status page as a browser shows it: headless Chromium, run by the tests.

/// Debian's Chromium (`apt-get install chromium`; `tests/setup.sh` installs it).
pub fn chromium() -> std::path::PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
        .expect("Chromium is missing: `apt-get install chromium` (the status page is tested in headless Chromium)")
}

/// The page's DOM after its scripts ran for `budget_ms` of virtual time.
pub fn rendered_page(host: &crate::Host, budget_ms: u32) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let out = std::process::Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg("--dump-dom")
        .arg(format!("http://{}/", host.admin))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr: Vec<&str> = stderr.lines().filter(|l| !l.contains("dbus")).collect();
    assert!(!dom.is_empty(), "chromium printed no DOM ({}): {}", out.status, stderr.join("\n"));
    dom
}

