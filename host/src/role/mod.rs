//! Execution roles: what a function may do beyond computing on its batch.
//!
//! A role is an IAM policy document (see [`policy`]) in `roles/NAME.json` beside
//! the functions; a manifest names it with `Role`. Like Spin's factors, a role is
//! checked once when the function loads (can the mapping read its source? which
//! directories and sockets does WASI get?) and then on every capability call
//! ([`Grants::check`]), where a denial is an error the guest sees, one audit line
//! for the operator, and a count in the metrics.

pub mod policy;
pub mod url;
pub mod wildcard;

use std::sync::Arc;

use policy::{Decision, Patterns, Policy};
use wildcard::wildcard_match;

use crate::manifest::AwsTarget;
use crate::status::StatusBoard;

/// The account Eddy's own resources (local streams, embedded tables, roles
/// without an ARN) are given in ARNs.
pub use crate::source::local::LOCAL_ACCOUNT;

/// Eddy's actions, for the capabilities IAM has no action for. Their resources
/// are URLs, paths and addresses rather than ARNs.
pub mod actions {
    /// Outbound HTTP through wasi:http; resource: the request's URL,
    /// `scheme://host[:port]/path?query`.
    pub const HTTP_REQUEST: &str = "eddy:HttpRequest";
    /// A directory preopened read-only; resource: its absolute path, optionally
    /// ending in `/*`.
    pub const READ_FILE: &str = "eddy:ReadFile";
    /// A directory preopened read-write; resource as for `eddy:ReadFile`.
    pub const WRITE_FILE: &str = "eddy:WriteFile";
    /// A TCP connection (or a UDP datagram) through wasi:sockets; resource:
    /// `IP:PORT` (`[IPv6]:PORT`).
    pub const CONNECT: &str = "eddy:Connect";
    /// Binding a socket to a chosen address: never granted, only audited.
    pub const BIND: &str = "eddy:Bind";
    /// Listening on or accepting from a socket: never granted, only audited.
    pub const LISTEN: &str = "eddy:Listen";

    pub const KINESIS_PUT_RECORD: &str = "kinesis:PutRecord";
    pub const KINESIS_PUT_RECORDS: &str = "kinesis:PutRecords";
    pub const DYNAMODB_GET_ITEM: &str = "dynamodb:GetItem";
    pub const DYNAMODB_PUT_ITEM: &str = "dynamodb:PutItem";
    pub const DYNAMODB_DELETE_ITEM: &str = "dynamodb:DeleteItem";
}

/// What a mapping needs to read its source (Lambda's list).
pub fn source_actions(kind: SourceKind) -> &'static [&'static str] {
    match kind {
        SourceKind::Kinesis => &[
            "kinesis:DescribeStream",
            "kinesis:DescribeStreamSummary",
            "kinesis:GetRecords",
            "kinesis:GetShardIterator",
            "kinesis:ListShards",
        ],
        SourceKind::KinesisFanOut => &[
            "kinesis:DescribeStream",
            "kinesis:DescribeStreamSummary",
            "kinesis:GetRecords",
            "kinesis:GetShardIterator",
            "kinesis:ListShards",
            "kinesis:SubscribeToShard",
        ],
        SourceKind::Dynamodb => &[
            "dynamodb:DescribeStream",
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
            "dynamodb:ListStreams",
        ],
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A Kinesis stream read by polling (also Eddy's local streams).
    Kinesis,
    /// A Kinesis stream read through an enhanced fan-out consumer.
    KinesisFanOut,
    Dynamodb,
}

impl SourceKind {
    /// Which of Lambda's permission sets reading `source` takes.
    pub fn of(source: &crate::manifest::SourceRef) -> SourceKind {
        use crate::manifest::SourceRef;
        match source {
            SourceRef::Kinesis { consumer: Some(_), .. } => SourceKind::KinesisFanOut,
            SourceRef::Kinesis { .. } | SourceRef::Local { .. } => SourceKind::Kinesis,
            SourceRef::Dynamodb { .. } => SourceKind::Dynamodb,
        }
    }
}

/// Why a mapping may not start: what its role lacks, as Lambda's
/// CreateEventSourceMapping says it.
#[derive(Debug, thiserror::Error)]
pub enum MappingDenied {
    #[error("the execution role cannot read the event source: {0}")]
    Source(AccessDenied),
    #[error("the execution role cannot write to the on-failure destination: {0}")]
    Destination(AccessDenied),
}

impl MappingDenied {
    fn denial(&self) -> &AccessDenied {
        match self {
            MappingDenied::Source(denied) | MappingDenied::Destination(denied) => denied,
        }
    }
}

/// A role loaded for a function.
#[derive(Debug)]
pub struct Role {
    pub name: String,
    /// `arn:aws:iam::ACCOUNT:role/NAME`: the batch's `invokeIdentityArn`.
    pub arn: String,
    policy: Policy,
    /// A function whose manifest names no role may read its own source and
    /// nothing else, as if its role granted exactly that.
    source_only: bool,
}

/// A denied call, in IAM's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{principal} is not authorized to perform: {action} on resource: {resource} {reason}")]
pub struct AccessDenied {
    pub principal: String,
    pub action: String,
    pub resource: String,
    reason: &'static str,
}

impl Role {
    /// The role of a function whose manifest names none.
    pub fn source_only(function: &str) -> Role {
        Role {
            name: format!("{function}-source-only"),
            arn: format!("arn:aws:iam::{LOCAL_ACCOUNT}:role/{function}"),
            policy: Policy::default(),
            source_only: true,
        }
    }

    /// A role from its policy document. `reference` is the manifest's `Role`: a
    /// name or an IAM role ARN (whose last path segment is the name).
    pub fn from_policy(reference: &str, policy: Policy) -> Role {
        let name = role_name(reference).to_owned();
        let arn = if reference.starts_with("arn:") {
            reference.to_owned()
        } else {
            format!("arn:aws:iam::{LOCAL_ACCOUNT}:role/{name}")
        };
        Role { name, arn, policy, source_only: false }
    }

    fn principal(&self, function: &str) -> String {
        let account = self.arn.split(':').nth(4).filter(|a| !a.is_empty()).unwrap_or(LOCAL_ACCOUNT);
        format!("User: arn:aws:sts::{account}:assumed-role/{}/{function}", self.name)
    }

    /// IAM's decision on one call.
    pub fn evaluate(&self, action: &str, resource: &str) -> Decision {
        self.policy.evaluate(action, resource)
    }

    fn check(&self, function: &str, action: &str, resource: &str) -> Result<(), AccessDenied> {
        let reason = match self.evaluate(action, resource) {
            Decision::Allow => return Ok(()),
            Decision::ImplicitDeny => "because no identity-based policy allows the action",
            Decision::ExplicitDeny => "with an explicit deny in an identity-based policy",
        };
        Err(AccessDenied {
            principal: self.principal(function),
            action: action.to_owned(),
            resource: resource.to_owned(),
            reason,
        })
    }

    /// Whether the mapping may read its source, as Lambda checks when an event
    /// source mapping is created: the first action missing is the error.
    pub fn check_source(&self, function: &str, kind: SourceKind, source_arn: &str) -> Result<(), AccessDenied> {
        if self.source_only {
            return Ok(());
        }
        source_actions(kind).iter().try_for_each(|action| self.check(function, action, source_arn))
    }

    /// Whether the mapping may write its failure records to `target`, as Lambda
    /// checks when a mapping with a destination is created: the first grant
    /// missing is the error. A function without a role may (its manifest's
    /// author chose the destination, as the source).
    pub fn check_destination(&self, function: &str, target: &AwsTarget) -> Result<(), AccessDenied> {
        if self.source_only {
            return Ok(());
        }
        target.required_grants().iter().try_for_each(|(action, resource)| self.check(function, action, resource))
    }

    /// Lambda's checks when a mapping is created: the role must read the source
    /// (when its ARN is known; `eddy run --check` knows it only for some) and
    /// write the on-failure destination.
    pub fn check_mapping(
        &self,
        function: &str,
        config: &crate::manifest::EventSourceConfig,
        source_arn: Option<&str>,
    ) -> Result<(), MappingDenied> {
        if let Some(arn) = source_arn {
            self.check_source(function, SourceKind::of(&config.source), arn).map_err(MappingDenied::Source)?;
        }
        if let Some(crate::manifest::Destination::Aws { target, .. }) = config.on_failure.as_ref().map(|o| &o.destination) {
            self.check_destination(function, target).map_err(MappingDenied::Destination)?;
        }
        Ok(())
    }

    /// The directories WASI preopens: every absolute path that an `Allow`
    /// statement names for `eddy:ReadFile` or `eddy:WriteFile`, with the access
    /// the whole policy (denies included) gives it. `*` alone grants no directory:
    /// a directory must be named.
    pub fn file_grants(&self) -> Vec<FileGrant> {
        let mut grants: Vec<FileGrant> = Vec::new();
        for statement in self.policy.statements() {
            if statement.effect != policy::Effect::Allow || statement.conditional {
                continue;
            }
            let names_files = [actions::READ_FILE, actions::WRITE_FILE].iter().any(|a| {
                matches!(&statement.actions, Patterns::Matching(p) if p.iter().any(|p| wildcard_match(p, a, true)))
            });
            if !names_files {
                continue;
            }
            for resource in statement.resources.matching() {
                let Some(dir) = granted_directory(resource) else { continue };
                let write = self.evaluate(actions::WRITE_FILE, resource).is_allowed();
                let read = write || self.evaluate(actions::READ_FILE, resource).is_allowed();
                match grants.iter_mut().find(|g| g.dir == dir) {
                    Some(grant) => grant.write |= write,
                    None if read => grants.push(FileGrant { dir: dir.to_owned(), write }),
                    None => {}
                }
            }
        }
        grants
    }

    /// Whether the policy could allow any connection (then sockets are linked and
    /// each address is checked).
    pub fn may_connect(&self) -> bool {
        self.policy
            .statements()
            .iter()
            .any(|s| s.effect == policy::Effect::Allow && !s.conditional && s.actions.covers(actions::CONNECT, true))
    }
}

/// The policy file of the role a manifest's `Role` names (a name or an ARN).
pub fn policy_path(roles_dir: &std::path::Path, reference: &str) -> std::path::PathBuf {
    roles_dir.join(format!("{}.json", role_name(reference)))
}

/// A function's role: the policy file its manifest's `Role` names (`policy` is
/// the file's text, `None` when it is missing), or, when it names none, leave to
/// read its source and nothing else.
pub fn for_manifest(function: &str, reference: Option<&str>, policy: Option<&str>, roles_dir: &std::path::Path) -> anyhow::Result<Role> {
    let Some(reference) = reference else { return Ok(Role::source_only(function)) };
    let name = role_name(reference);
    let Some(text) = policy else {
        anyhow::bail!(
            "the manifest names the role {reference:?}, but there is no {}",
            policy_path(roles_dir, reference).display()
        );
    };
    let policy = Policy::parse(text).map_err(|e| anyhow::anyhow!("roles/{name}.json: {e}"))?;
    Ok(Role::from_policy(reference, policy))
}

pub use crate::names::role_name;

/// A directory the role preopens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileGrant {
    pub dir: String,
    pub write: bool,
}

/// `/data/in` or `/data/in/*` names the directory `/data/in`; anything with
/// other wildcards, or relative, names none.
fn granted_directory(resource: &str) -> Option<&str> {
    let dir = resource.strip_suffix("/*").unwrap_or(resource);
    let dir = if dir.len() > 1 { dir.trim_end_matches('/') } else { dir };
    (dir.starts_with('/') && !dir.contains(['*', '?']) && !dir.split('/').any(|part| part == "..")).then_some(dir)
}

/// A function's role as its invocations use it: every capability call goes
/// through [`Grants::check`].
pub struct Grants {
    pub function: Arc<str>,
    pub role: Arc<Role>,
    /// Where denials are counted (absent for `eddy invoke`).
    pub status: Option<Arc<StatusBoard>>,
    audit_budget: std::sync::Mutex<AuditBudget>,
}

/// Audit lines a function may cause per second: a handler that calls what it is
/// denied in a loop must not flood the operator's log. Denials past it are still
/// counted, and summed up in one line when the second is over.
const AUDIT_LINES_PER_SECOND: u32 = 100;

#[derive(Default)]
struct AuditBudget {
    second: u64,
    written: u32,
    suppressed: u64,
}

impl Grants {
    pub fn new(function: Arc<str>, role: Arc<Role>, status: Option<Arc<StatusBoard>>) -> Grants {
        Grants { function, role, status, audit_budget: Default::default() }
    }

    /// The grants of a function whose manifest names no role, counted nowhere
    /// (for tests, benchmarks and `eddy invoke`).
    pub fn source_only(function: &str) -> Arc<Grants> {
        Arc::new(Grants::new(Arc::from(function), Arc::new(Role::source_only(function)), None))
    }

    /// Whether the mapping may read its source; a denial is audited and counted
    /// like any other.
    pub fn check_source(&self, kind: SourceKind, source_arn: &str) -> Result<(), AccessDenied> {
        let result = self.role.check_source(&self.function, kind, source_arn);
        if let Err(denied) = &result {
            self.audit(&denied.action, source_arn);
        }
        result
    }

    /// Whether the mapping may write to its destination; audited as
    /// [`Grants::check_source`].
    pub fn check_destination(&self, target: &AwsTarget) -> Result<(), AccessDenied> {
        let result = self.role.check_destination(&self.function, target);
        if let Err(denied) = &result {
            self.audit(&denied.action, &denied.resource);
        }
        result
    }

    /// [`Role::check_mapping`], with the denial audited and counted.
    pub fn check_mapping(&self, config: &crate::manifest::EventSourceConfig, source_arn: &str) -> Result<(), MappingDenied> {
        let result = self.role.check_mapping(&self.function, config, Some(source_arn));
        if let Err(denied) = &result {
            self.audit(&denied.denial().action, &denied.denial().resource);
        }
        result
    }

    fn audit(&self, action: &str, resource: &str) {
        if self.within_audit_budget() {
            tracing::warn!(target: "audit", function = %self.function, role = %self.role.name,
                action, resource, "access denied");
        }
        if let Some(status) = &self.status {
            status.count_denied(&self.function, action);
        }
    }

    /// Whether this denial gets its own audit line; a new second first reports
    /// how many the last one left out.
    fn within_audit_budget(&self) -> bool {
        let Ok(mut budget) = self.audit_budget.lock() else { return true };
        let second = crate::store::now_ms() / 1000;
        if budget.second != second {
            if budget.suppressed > 0 {
                tracing::warn!(target: "audit", function = %self.function, role = %self.role.name,
                    suppressed = budget.suppressed, "access denied {} more times (audit lines are capped at {AUDIT_LINES_PER_SECOND} a second; the metric counts every one)",
                    budget.suppressed);
            }
            *budget = AuditBudget { second, written: 0, suppressed: 0 };
        }
        if budget.written < AUDIT_LINES_PER_SECOND {
            budget.written += 1;
            true
        } else {
            budget.suppressed += 1;
            false
        }
    }

    /// Audits and counts a request that no role can be granted (a socket that
    /// would serve), for the guest to get its error.
    pub fn refuse(&self, action: &str, resource: &str) {
        self.audit(action, resource);
    }

    /// Checks one call. A denial is logged as an audit line (target `audit`) and
    /// counted, and returned for the guest.
    pub fn check(&self, action: &str, resource: &str) -> Result<(), AccessDenied> {
        let result = self.role.check(&self.function, action, resource);
        if result.is_err() {
            self.audit(action, resource);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(json: &str) -> Role {
        Role::from_policy("worker", Policy::parse(json).expect("policy"))
    }

    #[test]
    fn denial_reads_like_iam() {
        let r = role(r#"{"Statement":[{"Effect":"Deny","Action":"kinesis:*","Resource":"*"}]}"#);
        let denied = r.check("fn1", "kinesis:PutRecord", "arn:aws:kinesis:local:000000000000:stream/out");
        let message = denied.expect_err("denied").to_string();
        assert_eq!(
            message,
            "User: arn:aws:sts::000000000000:assumed-role/worker/fn1 is not authorized to perform: \
             kinesis:PutRecord on resource: arn:aws:kinesis:local:000000000000:stream/out \
             with an explicit deny in an identity-based policy"
        );
        let r = Role::from_policy("arn:aws:iam::123456789012:role/service-role/reader", Policy::default());
        assert_eq!(r.name, "reader");
        let message = r.check("f", "dynamodb:GetItem", "t").expect_err("denied").to_string();
        assert!(message.starts_with("User: arn:aws:sts::123456789012:assumed-role/reader/f"), "{message}");
        assert!(message.ends_with("because no identity-based policy allows the action"), "{message}");
    }

    #[test]
    fn source_check_names_the_first_missing_action() {
        let arn = "arn:aws:kinesis:us-east-1:1:stream/in";
        let r = role(
            r#"{"Statement":[{"Effect":"Allow","Action":["kinesis:DescribeStream*","kinesis:ListShards","kinesis:GetShardIterator"],"Resource":"*"}]}"#,
        );
        let denied = r.check_source("f", SourceKind::Kinesis, arn).expect_err("GetRecords is missing");
        assert_eq!((denied.action.as_str(), denied.resource.as_str()), ("kinesis:GetRecords", arn));

        let r = role(r#"{"Statement":[{"Effect":"Allow","Action":"kinesis:*","Resource":"arn:aws:kinesis:*:*:stream/in"}]}"#);
        assert!(r.check_source("f", SourceKind::Kinesis, arn).is_ok());
        assert!(r.check_source("f", SourceKind::KinesisFanOut, arn).is_ok());
        assert!(r.check_source("f", SourceKind::Kinesis, "arn:aws:kinesis:us-east-1:1:stream/other").is_err());
        assert_eq!(
            r.check_source("f", SourceKind::Dynamodb, "arn:aws:dynamodb:r:1:table/t/stream/x").expect_err("").action,
            "dynamodb:DescribeStream"
        );

        let r = role(r#"{"Statement":[{"Effect":"Allow","Action":["kinesis:Get*","kinesis:Describe*","kinesis:ListShards"],"Resource":"*"}]}"#);
        assert!(r.check_source("f", SourceKind::Kinesis, arn).is_ok());
        assert_eq!(r.check_source("f", SourceKind::KinesisFanOut, arn).expect_err("").action, "kinesis:SubscribeToShard");

        assert!(Role::source_only("f").check_source("f", SourceKind::Dynamodb, "anything").is_ok());
        assert!(Role::source_only("f").check("f", "kinesis:PutRecord", "x").is_err(), "and nothing else");
    }

    #[test]
    fn file_grants_follow_the_whole_policy() {
        let r = role(
            r#"{"Statement":[
                {"Effect":"Allow","Action":"eddy:ReadFile","Resource":["/srv/in/*","/srv/both","relative/x","/srv/wild*/x"]},
                {"Effect":"Allow","Action":"eddy:WriteFile","Resource":["/srv/out/*","/srv/both/*","/srv/denied/*"]},
                {"Effect":"Deny","Action":"eddy:*","Resource":"/srv/denied/*"}]}"#,
        );
        let grants = r.file_grants();
        assert!(grants.contains(&FileGrant { dir: "/srv/in".into(), write: false }), "{grants:?}");
        assert!(grants.contains(&FileGrant { dir: "/srv/out".into(), write: true }), "{grants:?}");
        // Named by both actions: read-write.
        assert!(grants.contains(&FileGrant { dir: "/srv/both".into(), write: true }), "{grants:?}");
        assert_eq!(grants.len(), 3, "denied, relative and wildcard paths grant nothing: {grants:?}");

        // A `*` statement beside a named directory makes it writable as well.
        let r = role(
            r#"{"Statement":[{"Effect":"Allow","Action":"eddy:ReadFile","Resource":"/srv/in/*"},
                {"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        );
        assert_eq!(r.file_grants(), vec![FileGrant { dir: "/srv/in".into(), write: true }]);
        assert!(role(r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#).file_grants().is_empty());
        assert!(role(r#"{"Statement":[{"Effect":"Allow","Action":"eddy:ReadFile","Resource":"/a/../etc"}]}"#).file_grants().is_empty());
    }

    #[test]
    fn audit_lines_are_capped_but_denials_all_counted() {
        let status = Arc::new(StatusBoard::default());
        status.set_function(crate::status::FunctionStatus::new("f", crate::status::FunctionState::Running), true);
        let grants = Grants::new(Arc::from("f"), Arc::new(Role::source_only("f")), Some(Arc::clone(&status)));
        let started = crate::store::now_ms() / 1000;
        let mut logged = 0;
        for _ in 0..1000 {
            assert!(grants.check("kinesis:PutRecord", "x").is_err());
            logged += u32::from(grants.audit_budget.lock().map(|b| b.suppressed == 0).unwrap_or(false));
        }
        let counted = status.snapshot()[0].access_denied["kinesis:PutRecord"];
        assert_eq!(counted, 1000, "every denial is counted");
        if crate::store::now_ms() / 1000 == started {
            // All in one second: the budget, then none.
            assert_eq!(logged, AUDIT_LINES_PER_SECOND);
        }
    }

    #[test]
    fn sockets_need_a_connect_grant() {
        assert!(!Role::source_only("f").may_connect());
        assert!(!role(r#"{"Statement":[{"Effect":"Allow","Action":"kinesis:*","Resource":"*"}]}"#).may_connect());
        let r = role(r#"{"Statement":[{"Effect":"Allow","Action":"eddy:Connect","Resource":"127.0.0.1:*"}]}"#);
        assert!(r.may_connect());
        assert!(r.evaluate(actions::CONNECT, "127.0.0.1:5432").is_allowed());
        assert!(!r.evaluate(actions::CONNECT, "10.0.0.1:5432").is_allowed());
    }
}
