//! Cluster mode: several `eddy run` processes share an 8-shard kinesis-mock
//! stream through a lease table in DynamoDB Local, all on 127.0.0.1. What the
//! hosts did is read back from the lease table (sampled all along) and from
//! their logs (each record the `inspect` handler saw, with when and where).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client as Dynamo;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use eddy_tests::emulators::{self, Emulator};
use eddy_tests::kinesis::{Kinesis, records};
use eddy_tests::{Host, Workspace, wait_for};
use serde_json::Value;

/// The tests of this file run one at a time: each starts several hosts and two
/// emulators, and their timings are what is measured.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Short, so the tests are: the default is 10 s.
const FAILOVER: Duration = Duration::from_secs(3);
const BATCH_SIZE: usize = 20;

struct Cluster {
    kinesis: Kinesis,
    dynamodb: Emulator,
    leases: Dynamo,
    table: String,
    /// One workspace (functions folder and data directory) per host; the host
    /// comes first so that it stops before its workspace is deleted.
    hosts: Vec<(String, Option<Host>, Workspace)>,
    stream: String,
}

/// A record as one host's handler saw it.
#[derive(Debug, Clone)]
struct Seen {
    host: String,
    at: String,
    shard: String,
    sequence: String,
    key: String,
    i: u64,
}

impl Cluster {
    fn start(stream: &str, shards: i32) -> Cluster {
        let kinesis = Kinesis::start();
        kinesis.create_stream(stream, shards);
        let dynamodb = emulators::dynamodb();
        let leases = Dynamo::new(&kinesis.rt.block_on(emulators::sdk_config(&dynamodb.endpoint)));
        Cluster {
            kinesis,
            dynamodb,
            leases,
            table: format!("leases-{}", eddy_tests::unique()),
            hosts: Vec::new(),
            stream: stream.to_owned(),
        }
    }

    /// Starts host `name` (also its worker id in the lease table).
    fn add_host(&mut self, name: &str) {
        let ws = Workspace::new();
        ws.deploy("inspect", "inspect", &self.kinesis.manifest(&self.stream, &format!("BatchSize = {BATCH_SIZE}")));
        let failover = FAILOVER.as_millis().to_string();
        let host = Host::start_with_env(
            &ws,
            &["--lease-table", &self.table, "--failover-ms", &failover, "--worker-id", name],
            &[("AWS_ENDPOINT_URL_DYNAMODB", &self.dynamodb.endpoint)],
        );
        self.hosts.push((name.to_owned(), Some(host), ws));
    }

    fn host(&self, name: &str) -> &Host {
        self.hosts.iter().find(|(n, _, _)| n == name).and_then(|(_, h, _)| h.as_ref()).expect("a running host")
    }

    fn take_host(&mut self, name: &str) -> Host {
        self.hosts.iter_mut().find(|(n, _, _)| n == name).and_then(|(_, h, _)| h.take()).expect("a running host")
    }

    /// Shard → owner (`None` if nobody holds it), for the leases that are not
    /// finished.
    fn owners(&self) -> BTreeMap<String, Option<String>> {
        lease_owners(&self.kinesis.rt, &self.leases, &self.table)
    }

    /// Every record every host (running or not) handled, from their logs.
    fn seen(&self) -> Vec<Seen> {
        let mut all = Vec::new();
        for (name, _, ws) in &self.hosts {
            for entry in std::fs::read_dir(ws.path()).expect("workspace").flatten() {
                let path = entry.path();
                if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("host-") && n.ends_with(".log")) {
                    all.extend(seen_in(name, &std::fs::read_to_string(&path).unwrap_or_default()));
                }
            }
        }
        all.sort_by(|a, b| a.at.cmp(&b.at));
        all
    }
}

fn lease_owners(rt: &tokio::runtime::Runtime, client: &Dynamo, table: &str) -> BTreeMap<String, Option<String>> {
    let Ok(out) = rt.block_on(client.scan().table_name(table).consistent_read(true).send()) else { return BTreeMap::new() };
    out.items()
        .iter()
        .filter_map(|item| {
            let shard = item.get("leaseKey")?.as_s().ok()?;
            let finished = item.get("checkpoint").and_then(|c| c.as_s().ok()).is_some_and(|c| c == "SHARD_END");
            (!shard.starts_with('(') && !finished)
                .then(|| (shard.clone(), item.get("leaseOwner").and_then(|o| o.as_s().ok()).cloned()))
        })
        .collect()
}

/// The `inspect` lines of a host log: `shard:sequence key [request] {"key":..,"i":..}`.
fn seen_in(host: &str, log: &str) -> Vec<Seen> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "handler")
        .filter_map(|line| {
            let message = line["fields"]["message"].as_str()?;
            let (event_id, rest) = message.split_once(' ')?;
            let (key, rest) = rest.split_once(" [")?;
            let (_, text) = rest.split_once("] ")?;
            let (shard, sequence) = event_id.split_once(':')?;
            let i = serde_json::from_str::<Value>(text).ok()?["i"].as_u64()?;
            Some(Seen {
                host: host.to_owned(),
                at: line["timestamp"].as_str()?.to_owned(),
                shard: shard.to_owned(),
                sequence: sequence.to_owned(),
                key: key.to_owned(),
                i,
            })
        })
        .collect()
}

/// Counts per owner, owners sorted by name (`-` for leases nobody holds).
fn spread(owners: &BTreeMap<String, Option<String>>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for owner in owners.values() {
        *counts.entry(owner.clone().unwrap_or_else(|| "-".into())).or_default() += 1;
    }
    counts
}

/// Samples the lease table every 100 ms in a thread until dropped.
struct Sampler {
    samples: Arc<Mutex<Vec<(Instant, BTreeMap<String, Option<String>>)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(cluster: &Cluster) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (client, table) = (cluster.leases.clone(), cluster.table.clone());
        let (s, st) = (Arc::clone(&samples), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            while !st.load(Ordering::Relaxed) {
                let owners = lease_owners(&rt, &client, &table);
                s.lock().expect("samples").push((Instant::now(), owners));
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Sampler { samples, stop, thread: Some(thread) }
    }

    fn since(&self, from: Instant) -> Vec<(Instant, BTreeMap<String, Option<String>>)> {
        self.samples.lock().expect("samples").iter().filter(|(at, _)| *at >= from).cloned().collect()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Waits until every record of `keys` × `range` has been handled by some host.
fn wait_all_handled(cluster: &Cluster, keys: usize, range: std::ops::Range<u64>) -> Vec<Seen> {
    let expected = keys * (range.end - range.start) as usize;
    wait_for(&format!("{expected} records handled"), || {
        let seen = cluster.seen();
        let distinct: BTreeSet<(String, u64)> =
            seen.iter().filter(|s| range.contains(&s.i)).map(|s| (s.key.clone(), s.i)).collect();
        (distinct.len() >= expected).then_some(seen)
    })
}

/// Waits until every shard's lease holds a checkpoint at the last record seen
/// handled on it.
fn wait_checkpointed(cluster: &Cluster, seen: &[Seen]) {
    let mut last: BTreeMap<&str, &str> = BTreeMap::new();
    for s in seen {
        let newest = last.entry(&s.shard).or_insert(&s.sequence);
        if (s.sequence.len(), s.sequence.as_str()) > (newest.len(), *newest) {
            *newest = &s.sequence;
        }
    }
    wait_for("the handled records' checkpoints in the lease table", || {
        let out = cluster.kinesis.rt.block_on(cluster.leases.scan().table_name(&cluster.table).consistent_read(true).send()).ok()?;
        let checkpoints: BTreeMap<&str, &str> = out
            .items()
            .iter()
            .filter_map(|item| Some((item.get("leaseKey")?.as_s().ok()?.as_str(), item.get("checkpoint")?.as_s().ok()?.as_str())))
            .collect();
        last.iter().all(|(shard, sequence)| checkpoints.get(shard) == Some(sequence)).then_some(())
    });
}

/// Records handled more than once, among those numbered in `range`: how many
/// times in all, and by which hosts (first handling, then again).
fn duplicates(seen: &[Seen], range: std::ops::Range<u64>) -> (usize, BTreeSet<(String, String)>) {
    let mut first: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    let mut again = 0;
    let mut hosts = BTreeSet::new();
    for s in seen.iter().filter(|s| range.contains(&s.i)) {
        if let Some(host) = first.get(&(s.shard.as_str(), s.sequence.as_str())) {
            again += 1;
            hosts.insert(((*host).to_owned(), s.host.clone()));
        } else {
            first.insert((&s.shard, &s.sequence), &s.host);
        }
    }
    (again, hosts)
}

/// Per key, records first handled in the order they were put; and per shard,
/// the hosts take turns: once another host has handled a shard, the one before
/// never handles it again (one owner at a time).
fn assert_order_and_one_owner_at_a_time(seen: &[Seen]) {
    let mut per_key: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for s in seen {
        let list = per_key.entry(&s.key).or_default();
        if !list.contains(&s.i) {
            list.push(s.i);
        }
    }
    for (key, list) in &per_key {
        assert!(list.windows(2).all(|w| w[0] < w[1]), "key {key} out of order: {list:?}");
    }
    let mut turns: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in seen {
        let hosts = turns.entry(&s.shard).or_default();
        if hosts.last() != Some(&s.host.as_str()) {
            hosts.push(&s.host);
        }
    }
    for (shard, hosts) in &turns {
        let distinct: BTreeSet<&&str> = hosts.iter().collect();
        assert_eq!(distinct.len(), hosts.len(), "{shard} went back to a host it had left: {hosts:?}");
    }
}

/// Puts records `{"key":..,"i":..}` for each `i` of `range` in a thread, one
/// `i` (every key) every 100 ms, so that they flow while hosts come and go.
fn put_slowly(cluster: &Cluster, keys: usize, range: std::ops::Range<u64>) -> std::thread::JoinHandle<()> {
    let (client, stream) = (cluster.kinesis.client.clone(), cluster.stream.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        for i in range {
            let entries = records(keys, i..i + 1)
                .into_iter()
                .map(|(k, d)| PutRecordsRequestEntry::builder().partition_key(k).data(Blob::new(d.into_bytes())).build().expect("entry"))
                .collect();
            rt.block_on(client.put_records().stream_name(&stream).set_records(Some(entries)).send()).expect("PutRecords");
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// Waits until the leases are spread as `want` (counts per owner, any order),
/// and returns how long that took.
fn wait_spread(cluster: &Cluster, want: &[usize], from: Instant) -> Duration {
    let mut want = want.to_vec();
    want.sort_unstable();
    wait_for(&format!("leases spread as {want:?}"), || {
        let owners = cluster.owners();
        let mut counts: Vec<usize> = spread(&owners).into_iter().filter(|(o, _)| o != "-").map(|(_, n)| n).collect();
        counts.sort_unstable();
        (counts == want && owners.values().all(Option::is_some)).then(|| from.elapsed())
    })
}

#[test]
fn hosts_share_shards_hand_them_over_on_sigterm_take_them_after_sigkill_and_a_new_host_steals_its_share() {
    let _serial = one_at_a_time();
    let mut cluster = Cluster::start("shared", 8);
    let sampler = Sampler::start(&cluster);
    const KEYS: usize = 40;

    // Three hosts started together spread the 8 leases 3/3/2.
    let started = Instant::now();
    for name in ["host-a", "host-b", "host-c"] {
        cluster.add_host(name);
    }
    // From when every host runs the function: the time the leases take.
    for name in ["host-a", "host-b", "host-c"] {
        cluster.host(name).wait_state("inspect", "running");
    }
    let up = Instant::now();
    let took = wait_spread(&cluster, &[3, 3, 2], up);
    eprintln!(
        "three hosts: leases spread 3/3/2 {took:?} after every host ran the function, {:?} after the first was started (failover {FAILOVER:?})",
        started.elapsed()
    );
    assert!(took <= FAILOVER, "spread took {took:?}");
    cluster.kinesis.put(&cluster.stream, &records(KEYS, 0..10));
    let seen = wait_all_handled(&cluster, KEYS, 0..10);
    assert_eq!(duplicates(&seen, 0..10).0, 0);
    let hosts_used: BTreeSet<&str> = seen.iter().map(|s| s.host.as_str()).collect();
    assert_eq!(hosts_used.len(), 3, "every host handled records");

    // A fourth host steals its share (2), one lease at a time.
    let joined = Instant::now();
    cluster.add_host("host-d");
    let took = wait_spread(&cluster, &[2, 2, 2, 2], joined);
    eprintln!("fourth host: 2/2/2/2 in {took:?}");
    let counts: Vec<usize> = sampler
        .since(joined)
        .iter()
        .map(|(_, owners)| owners.values().filter(|o| o.as_deref() == Some("host-d")).count())
        .collect();
    assert!(counts.windows(2).all(|w| w[1] <= w[0] + 1), "host-d's leases over time: {counts:?}");
    assert!(counts.contains(&1), "it held one lease before two: {counts:?}");
    // A host that was stolen from learns it at its next renewal (or when its
    // next checkpoint is refused): let that pass before records flow again.
    std::thread::sleep(FAILOVER);

    // SIGTERM while records flow: the host finishes, checkpoints and releases;
    // the others take its leases at once, and nothing is handled twice.
    let a_leases: Vec<String> = cluster.owners().into_iter().filter(|(_, o)| o.as_deref() == Some("host-a")).map(|(s, _)| s).collect();
    let putter = put_slowly(&cluster, KEYS, 10..30);
    std::thread::sleep(Duration::from_millis(700));
    let host_a = cluster.take_host("host-a");
    let stopping = Instant::now();
    assert_eq!(host_a.stop().code(), Some(0));
    let took = wait_for("host-a's leases taken by others", || {
        let owners = cluster.owners();
        a_leases.iter().all(|s| owners.get(s).is_some_and(|o| o.as_deref().is_some_and(|o| o != "host-a"))).then(|| stopping.elapsed())
    });
    eprintln!("SIGTERM: host-a's {} leases taken {took:?} after the signal", a_leases.len());
    assert!(took < FAILOVER, "handed over without waiting for the failover time: {took:?}");
    putter.join().expect("putter");
    let seen = wait_all_handled(&cluster, KEYS, 10..30);
    let (redone, by) = duplicates(&seen, 10..30);
    assert_eq!(redone, 0, "a graceful handoff handles nothing twice; handled again (first host, second host): {by:?}");

    // SIGKILL while records flow: the leases are taken within 2x the failover
    // time; records are redone only from the last batch of each of its shards.
    wait_spread(&cluster, &[3, 3, 2], stopping);
    let b_leases: Vec<String> = cluster.owners().into_iter().filter(|(_, o)| o.as_deref() == Some("host-b")).map(|(s, _)| s).collect();
    let putter = put_slowly(&cluster, KEYS, 30..60);
    std::thread::sleep(Duration::from_millis(700));
    let killed = Instant::now();
    cluster.take_host("host-b").kill();
    let took = wait_for("host-b's leases taken by others", || {
        let owners = cluster.owners();
        b_leases.iter().all(|s| owners.get(s).is_some_and(|o| o.as_deref().is_some_and(|o| o != "host-b"))).then(|| killed.elapsed())
    });
    putter.join().expect("putter");
    let seen = wait_all_handled(&cluster, KEYS, 30..60);
    let (redone, by) = duplicates(&seen, 30..60);
    eprintln!("SIGKILL: host-b's {} leases taken {took:?} after the kill; {redone} records handled twice", b_leases.len());
    assert!(took <= FAILOVER * 2, "failover took {took:?}");
    assert!(redone <= BATCH_SIZE * b_leases.len(), "{redone} records handled twice (bound: one batch per shard)");
    assert!(by.iter().all(|(first, _)| first == "host-b"), "only host-b's work is redone: {by:?}");

    // Over the whole run: every record once at least, per-key order, one owner
    // of a shard at a time, and never an owner that is not one of the hosts.
    let seen = cluster.seen();
    let distinct: BTreeSet<(&str, u64)> = seen.iter().map(|s| (s.key.as_str(), s.i)).collect();
    assert_eq!(distinct.len(), KEYS * 60);
    assert_order_and_one_owner_at_a_time(&seen);
    let names: BTreeSet<String> = ["host-a", "host-b", "host-c", "host-d"].iter().map(|s| (*s).to_owned()).collect();
    let samples = sampler.since(started);
    let created = samples.iter().position(|(_, owners)| owners.len() == 8).expect("the leases were created");
    for (_, owners) in &samples[created..] {
        assert_eq!(owners.len(), 8, "one lease per shard: {owners:?}");
        assert!(owners.values().flatten().all(|o| names.contains(o)), "{owners:?}");
    }
    // The status shows who holds every shard.
    let status = cluster.host("host-c").function("inspect").expect("inspect");
    let shards = status["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 8, "{status}");
    assert!(shards.iter().all(|s| s["owner"].as_str().is_some()), "{status}");
    assert_eq!(status["cluster"]["worker"], "host-c");
    // And so do the status page and `eddy status`.
    let dom = eddy_tests::browser::rendered_page(cluster.host("host-c"), 3000);
    let owned = dom.matches("data-owner=\"host-").count();
    assert_eq!(owned, 8, "every shard line names its owner: {dom}");
    assert!(dom.contains("(this host)"), "{dom}");
    let out = eddy_tests::eddy(&["status", "--admin", &cluster.host("host-c").admin], std::path::Path::new("."));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("cluster worker host-c"), "{printed}");
    assert_eq!(printed.matches("owner host-").count(), 8, "{printed}");
}

#[test]
fn after_a_split_the_children_start_only_once_their_parent_is_finished_whichever_hosts_hold_them() {
    let _serial = one_at_a_time();
    let mut cluster = Cluster::start("resharded", 2);
    const KEYS: usize = 24;
    for name in ["host-a", "host-b", "host-c"] {
        cluster.add_host(name);
    }
    let started = Instant::now();
    wait_spread(&cluster, &[1, 1], started);
    cluster.kinesis.put(&cluster.stream, &records(KEYS, 0..10));
    wait_all_handled(&cluster, KEYS, 0..10);

    // Split the first shard in the middle of its hash key range (0 to 2^127),
    // while records keep coming.
    let putter = put_slowly(&cluster, KEYS, 10..40);
    std::thread::sleep(Duration::from_millis(1000));
    let parent = cluster.kinesis.shards(&cluster.stream)[0].shard_id().to_owned();
    cluster
        .kinesis
        .rt
        .block_on(
            cluster
                .kinesis
                .client
                .split_shard()
                .stream_name(&cluster.stream)
                .shard_to_split(&parent)
                .new_starting_hash_key("85070591730234615865843651857942052864")
                .send(),
        )
        .expect("SplitShard");
    putter.join().expect("putter");
    let seen = wait_all_handled(&cluster, KEYS, 10..40);

    let children: BTreeSet<String> = cluster
        .kinesis
        .shards(&cluster.stream)
        .iter()
        .filter(|s| s.parent_shard_id() == Some(parent.as_str()))
        .map(|s| s.shard_id().to_owned())
        .collect();
    assert_eq!(children.len(), 2, "{children:?}");
    // Every record of the parent was handled before the first of a child.
    let last_of_parent = seen.iter().filter(|s| s.shard == parent).map(|s| s.at.clone()).max().expect("parent records");
    let child_records: Vec<&Seen> = seen.iter().filter(|s| children.contains(&s.shard)).collect();
    assert!(!child_records.is_empty(), "the children were read");
    let first_of_children = child_records.iter().map(|s| s.at.clone()).min().expect("child records");
    assert!(last_of_parent < first_of_children, "parent's last record at {last_of_parent}, a child's first at {first_of_children}");
    let parent_hosts: BTreeSet<&str> = seen.iter().filter(|s| s.shard == parent).map(|s| s.host.as_str()).collect();
    let child_hosts: BTreeSet<&str> = child_records.iter().map(|s| s.host.as_str()).collect();
    eprintln!("split: parent on {parent_hosts:?}, children on {child_hosts:?}");
    assert_order_and_one_owner_at_a_time(&seen);
    // The parent's lease ends finished, and the children's are held.
    let owners = cluster.owners();
    assert!(!owners.contains_key(&parent), "the parent's lease is finished: {owners:?}");
    assert!(children.iter().all(|c| owners.get(c).is_some_and(Option::is_some)), "{owners:?}");
}

#[test]
fn hosts_that_cannot_renew_their_leases_stop_their_shards_and_resume_when_the_table_is_back() {
    let _serial = one_at_a_time();
    let mut cluster = Cluster::start("unrenewed", 2);
    const KEYS: usize = 12;
    for name in ["host-a", "host-b"] {
        cluster.add_host(name);
    }
    wait_spread(&cluster, &[1, 1], Instant::now());
    cluster.kinesis.put(&cluster.stream, &records(KEYS, 0..5));
    let seen = wait_all_handled(&cluster, KEYS, 0..5);
    // Past these records only once their checkpoints are in the table: a
    // record handled but not yet checkpointed is rightly handled again.
    wait_checkpointed(&cluster, &seen);

    // The lease table goes away: within two thirds of the failover time each
    // host stops its shard, before anyone could take it.
    cluster.dynamodb.stop();
    std::thread::sleep(FAILOVER);
    for name in ["host-a", "host-b"] {
        let stopped = cluster.host(name).lines().iter().any(|l| l["fields"]["message"] == "lease not renewed in time: stopping the shard");
        assert!(stopped, "{name} stopped its shard");
        let ready = ureq::get(&format!("http://{}/readyz", cluster.host(name).admin)).call();
        assert!(ready.is_err(), "{name} is not ready without its lease table");
    }
    cluster.kinesis.put(&cluster.stream, &records(KEYS, 5..10));
    std::thread::sleep(Duration::from_secs(2));
    assert!(cluster.seen().iter().all(|s| s.i < 5), "nothing is handled without a lease");

    cluster.dynamodb.restart();
    let seen = wait_all_handled(&cluster, KEYS, 5..10);
    assert_eq!(duplicates(&seen, 0..10).0, 0);
    assert_order_and_one_owner_at_a_time(&seen);
    for name in ["host-a", "host-b"] {
        let admin = cluster.host(name).admin.clone();
        wait_for(&format!("{name} ready again"), || ureq::get(&format!("http://{admin}/readyz")).call().ok());
    }
}

#[test]
fn a_tumbling_window_keeps_its_state_in_the_lease() {
    let _serial = one_at_a_time();
    let mut cluster = Cluster::start("windowed", 1);
    let ws = Workspace::new();
    ws.deploy("totals", "totals", &cluster.kinesis.manifest(&cluster.stream, "TumblingWindowInSeconds = 300"));
    let failover = FAILOVER.as_millis().to_string();
    let host = Host::start_with_env(
        &ws,
        &["--lease-table", &cluster.table, "--failover-ms", &failover, "--worker-id", "host-a"],
        &[("AWS_ENDPOINT_URL_DYNAMODB", &cluster.dynamodb.endpoint)],
    );
    cluster.hosts.push(("host-a".to_owned(), Some(host), ws));
    cluster.kinesis.put(&cluster.stream, &[("alice".into(), r#"{"amount": 4}"#.into()), ("bob".into(), r#"{"amount": 1}"#.into())]);
    // The window's running totals and the checkpoint are written together, into
    // the lease.
    let (state, checkpoint) = wait_for("the window state in the lease", || {
        let out = cluster.kinesis.rt.block_on(cluster.leases.scan().table_name(&cluster.table).send()).ok()?;
        let lease = out.items().iter().find(|i| i.get("leaseKey").and_then(|k| k.as_s().ok()).is_some_and(|k| k.starts_with("shardId")))?;
        let state = lease.get("windowState")?.as_s().ok()?.clone();
        let checkpoint = lease.get("checkpoint")?.as_s().ok()?.clone();
        state.contains("alice").then_some((state, checkpoint))
    });
    let window: Value = serde_json::from_str(&state).expect("the open window as JSON");
    assert!(window["end_ms"].as_u64() > window["start_ms"].as_u64(), "{state}");
    let totals: Value = serde_json::from_str(window["state"].as_str().expect("the handler's state")).expect("JSON");
    assert_eq!((totals["alice"].as_f64(), totals["bob"].as_f64()), (Some(4.0), Some(1.0)), "{state}");
    assert!(checkpoint.chars().all(|c| c.is_ascii_digit()), "{checkpoint}");
}

#[test]
fn a_host_started_before_its_lease_table_is_reachable_waits_for_it() {
    let _serial = one_at_a_time();
    let mut cluster = Cluster::start("waiting", 2);
    cluster.dynamodb.stop();
    cluster.add_host("host-a");
    let host = cluster.host("host-a");
    wait_for("the host to say it cannot use the table", || {
        host.log_text().contains("cannot use the lease table").then_some(())
    });
    assert!(ureq::get(&format!("http://{}/healthz", host.admin)).call().is_ok(), "alive");
    assert!(ureq::get(&format!("http://{}/readyz", host.admin)).call().is_err(), "not ready");
    cluster.dynamodb.restart();
    wait_spread(&cluster, &[2], Instant::now());
    let admin = cluster.host("host-a").admin.clone();
    wait_for("ready", || ureq::get(&format!("http://{admin}/readyz")).call().ok());
}

/// A lease table as an earlier version wrote it (every item in today's
/// format too: a shard lease with its checkpoint and a closed window's empty
/// `windowState`, the mapping's start under `(latest-started-at)`, a heartbeat
/// of a host long gone) is picked up where it was: the host takes the lease
/// and resumes after its checkpoint.
#[test]
fn a_lease_table_of_the_previous_format_is_resumed_where_it_was() {
    use aws_sdk_dynamodb::types::{AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
    let _serial = one_at_a_time();
    let mut cluster = Cluster::start("legacy", 1);
    cluster.kinesis.put(&cluster.stream, &records(1, 0..3));
    let rt = &cluster.kinesis.rt;
    // The sequence number of the second record: the old checkpoint.
    let client = &cluster.kinesis.client;
    let shard = "shardId-000000000000";
    let iterator = rt
        .block_on(client.get_shard_iterator().stream_name(&cluster.stream).shard_id(shard).shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon).send())
        .expect("GetShardIterator");
    let got = rt.block_on(client.get_records().shard_iterator(iterator.shard_iterator().expect("an iterator")).send()).expect("GetRecords");
    let sequences: Vec<String> = got.records().iter().map(|r| r.sequence_number().to_owned()).collect();
    assert_eq!(sequences.len(), 3, "{sequences:?}");

    let s = |v: &str| AttributeValue::S(v.to_owned());
    let n = |v: i64| AttributeValue::N(v.to_string());
    let key = |name: &str, kind| KeySchemaElement::builder().attribute_name(name).key_type(kind).build().expect("key");
    let attribute = |name: &str| AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build().expect("attr");
    rt.block_on(
        cluster.leases.create_table().table_name(&cluster.table)
            .key_schema(key("mapping", KeyType::Hash)).key_schema(key("leaseKey", KeyType::Range))
            .attribute_definitions(attribute("mapping")).attribute_definitions(attribute("leaseKey"))
            .billing_mode(BillingMode::PayPerRequest).send(),
    )
    .expect("CreateTable");
    let mapping = "inspect|kinesis:legacy";
    let items: [Vec<(&str, AttributeValue)>; 3] = [
        vec![("leaseKey", s(shard)), ("leaseCounter", n(7)), ("leaseOwner", s("old-host")), ("checkpoint", s(&sequences[1])),
             ("windowState", s("")), ("updatedMs", n(1))],
        vec![("leaseKey", s("(latest-started-at)")), ("checkpoint", s("1700000000000")), ("updatedMs", n(1))],
        vec![("leaseKey", s("(worker)old-host")), ("leaseOwner", s("old-host")), ("leaseCounter", n(3))],
    ];
    for item in items {
        let mut put = cluster.leases.put_item().table_name(&cluster.table).item("mapping", s(mapping));
        for (name, value) in item {
            put = put.item(name, value);
        }
        rt.block_on(put.send()).expect("PutItem");
    }

    cluster.add_host("host-a");
    // The old owner's lease expires (it never renews) and is taken; the third
    // record, and only it, is handled.
    let seen = wait_for("the record after the old checkpoint", || {
        let seen = cluster.seen();
        seen.iter().any(|s| s.i == 2).then_some(seen)
    });
    let handled: Vec<u64> = seen.iter().map(|s| s.i).collect();
    assert_eq!(handled, [2], "records before the old checkpoint were handled again: {seen:?}");
    assert_eq!(cluster.owners().get(shard), Some(&Some("host-a".to_owned())));
}

/// `eddy mapping` through any one host reaches every host: a pause stops the
/// shards of both, a rewind is carried out on every lease by its holder (once),
/// and a resume through the other host starts them all again from the new place.
#[test]
fn pause_rewind_and_resume_through_one_host_reach_every_host_of_the_cluster() {
    let _serial = one_at_a_time();
    let mut cluster = Cluster::start("controlled", 4);
    const KEYS: usize = 8;
    for name in ["host-a", "host-b"] {
        cluster.add_host(name);
    }
    for name in ["host-a", "host-b"] {
        cluster.host(name).wait_state("inspect", "running");
    }
    wait_spread(&cluster, &[2, 2], Instant::now());
    cluster.kinesis.put(&cluster.stream, &records(KEYS, 0..5));
    let seen = wait_all_handled(&cluster, KEYS, 0..5);
    wait_checkpointed(&cluster, &seen);

    let mapping = |host: &str, args: &[&str]| {
        let mut all = vec!["mapping"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--admin", &cluster.host(host).admin]);
        let out = eddy_tests::eddy(&all, cluster.hosts[0].2.path());
        assert!(out.status.success(), "eddy {all:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = mapping("host-a", &["pause", "inspect"]);
    assert!(out.contains("now paused"), "{out}");
    cluster.host("host-b").wait_state("inspect", "paused");
    cluster.kinesis.put(&cluster.stream, &records(KEYS, 5..8));
    std::thread::sleep(Duration::from_secs(3));
    assert!(cluster.seen().iter().all(|s| s.i < 5), "nothing is handled on either host while paused");

    // Rewound through host-b while paused; resumed through host-a.
    let out = mapping("host-b", &["rewind", "inspect", "--to", "TRIM_HORIZON"]);
    assert!(out.contains("rewound to TRIM_HORIZON; now paused"), "{out}");
    let before = cluster.seen().len();
    mapping("host-a", &["resume", "inspect"]);
    cluster.host("host-b").wait_state("inspect", "running");
    let seen = wait_for("every record handled again after the rewind", || {
        let seen = cluster.seen();
        let after: BTreeSet<(String, u64)> = seen[before..].iter().map(|s| (s.key.clone(), s.i)).collect();
        (after.len() == KEYS * 8).then_some(seen)
    });
    let after = &seen[before..];
    let hosts: BTreeSet<&str> = after.iter().map(|s| s.host.as_str()).collect();
    assert_eq!(hosts.len(), 2, "both hosts went on from the trim horizon");
    assert_order_and_one_owner_at_a_time(after);

    // Each lease was rewound once, by its holder, and says which rewind.
    let out = cluster.kinesis.rt.block_on(cluster.leases.scan().table_name(&cluster.table).consistent_read(true).send()).expect("scan");
    let control = out.items().iter().find(|i| i.get("leaseKey").and_then(|k| k.as_s().ok()).is_some_and(|k| k == "(control)")).expect("the control item");
    let id = control.get("rewindId").and_then(|v| v.as_n().ok()).expect("rewindId").clone();
    assert_eq!(control.get("paused").and_then(|v| v.as_bool().ok()), Some(&false));
    let rewound: Vec<Option<&String>> = out
        .items()
        .iter()
        .filter(|i| i.get("leaseKey").and_then(|k| k.as_s().ok()).is_some_and(|k| !k.starts_with('(')))
        .map(|i| i.get("rewound").and_then(|v| v.as_n().ok()))
        .collect();
    assert_eq!(rewound.len(), 4);
    assert!(rewound.iter().all(|r| *r == Some(&id)), "every lease carries rewind {id}: {rewound:?}");

    // Rewound again while running, through host-a: each holder stops its
    // running shards first (else their next checkpoint would undo the rewind)
    // and reads them again from the trim horizon.
    let before = cluster.seen().len();
    let out = mapping("host-a", &["rewind", "inspect", "--to", "TRIM_HORIZON"]);
    assert!(out.contains("now running"), "{out}");
    wait_for("every record handled a third time", || {
        let seen = cluster.seen();
        let again: BTreeSet<(String, u64)> = seen[before..].iter().map(|s| (s.key.clone(), s.i)).collect();
        (again.len() == KEYS * 8).then_some(())
    });
}
