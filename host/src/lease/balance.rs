//! Which lease a host should take next: the Kinesis Client Library's rules, as a
//! pure function of what the host sees in the lease table, so they can be
//! tested without a table.
//!
//! - A host aims at `ceil(leases / hosts)` leases of a mapping.
//! - It takes leases nobody holds (never taken, released, or expired) first.
//! - Only when none is left does it steal, and then one lease at a time, from
//!   the host holding the most, and only if that host holds more than its share
//!   (or exactly its share while this host is two or more short).

use std::collections::{BTreeMap, BTreeSet};

/// One lease as a host sees it at a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenLease {
    pub shard: String,
    /// `None` when nobody holds it, or its owner stopped renewing it.
    pub live_owner: Option<String>,
}

/// What to do after a scan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Leases free to take, as many as this host is short of its share.
    pub take: Vec<String>,
    /// A lease to steal from a host that holds more than its share.
    pub steal: Option<String>,
}

/// Decides what `me` takes. `leases` are the mapping's leases that may be worked
/// on now (not finished, parents finished); `workers` the hosts known to be alive
/// (`me` is counted whatever the set holds); `shuffle` orders candidates so that
/// hosts scanning at once rarely race for the same lease.
pub fn plan(me: &str, leases: &[SeenLease], workers: &BTreeSet<String>, shuffle: impl Fn(&mut Vec<String>)) -> Plan {
    let mut hosts: BTreeSet<&str> = workers.iter().map(String::as_str).collect();
    hosts.insert(me);
    let mut held: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut free = Vec::new();
    for lease in leases {
        match &lease.live_owner {
            Some(owner) => {
                hosts.insert(owner);
                held.entry(owner).or_default().push(&lease.shard);
            }
            None => free.push(lease.shard.clone()),
        }
    }
    let target = leases.len().div_ceil(hosts.len());
    let mine = held.get(me).map_or(0, Vec::len);
    let short = target.saturating_sub(mine);
    if short == 0 {
        return Plan::default();
    }
    if !free.is_empty() {
        shuffle(&mut free);
        free.truncate(short);
        return Plan { take: free, steal: None };
    }
    // The most loaded other host; ties go to the first name, so that hosts
    // stealing at once agree on whom to steal from.
    let Some((_, victims)) =
        held.iter().filter(|(owner, _)| **owner != me).max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(a.0)))
    else {
        return Plan::default();
    };
    if victims.len() > target || (victims.len() == target && mine + 1 < target) {
        let mut candidates: Vec<String> = victims.iter().map(|s| (*s).to_owned()).collect();
        shuffle(&mut candidates);
        return Plan { take: Vec::new(), steal: candidates.into_iter().next() };
    }
    Plan::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leases(owners: &[Option<&str>]) -> Vec<SeenLease> {
        owners
            .iter()
            .enumerate()
            .map(|(i, owner)| SeenLease { shard: format!("s{i}"), live_owner: owner.map(str::to_owned) })
            .collect()
    }

    fn workers(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn keep_order(_: &mut Vec<String>) {}

    #[test]
    fn a_lone_host_takes_every_free_lease() {
        let plan = plan("a", &leases(&[None; 8]), &workers(&[]), keep_order);
        assert_eq!(plan.take.len(), 8);
        assert_eq!(plan.steal, None);
    }

    #[test]
    fn known_hosts_each_take_their_share_of_free_leases() {
        let seen = leases(&[None; 8]);
        let plan = plan("a", &seen, &workers(&["a", "b", "c"]), keep_order);
        assert_eq!(plan.take, vec!["s0", "s1", "s2"], "ceil(8/3) = 3");
    }

    #[test]
    fn free_leases_come_before_stealing() {
        let seen = leases(&[Some("b"), Some("b"), Some("b"), Some("b"), None, Some("c")]);
        let plan = plan("a", &seen, &workers(&["a", "b", "c"]), keep_order);
        assert_eq!(plan.take, vec!["s4"]);
        assert_eq!(plan.steal, None);
    }

    #[test]
    fn steals_one_lease_from_the_most_loaded_host() {
        let seen = leases(&[Some("b"), Some("b"), Some("b"), Some("c"), Some("c"), Some("c"), Some("d"), Some("d")]);
        // A fourth host: target ceil(8/4) = 2, short by 2, yet it steals one.
        let plan = plan("a", &seen, &workers(&["b", "c", "d"]), keep_order);
        assert!(plan.take.is_empty());
        assert_eq!(plan.steal.as_deref(), Some("s0"), "from b, which holds 3 > 2 (ties go to the first name)");
    }

    #[test]
    fn does_not_steal_when_the_spread_is_fair() {
        // 3, 3, 2 over three hosts: everyone is within their share.
        let seen = leases(&[Some("b"), Some("b"), Some("b"), Some("c"), Some("c"), Some("c"), Some("a"), Some("a")]);
        assert_eq!(plan("a", &seen, &workers(&["a", "b", "c"]), keep_order), Plan::default());
        // A host at its share never steals.
        assert_eq!(plan("b", &seen, &workers(&["a", "b", "c"]), keep_order), Plan::default());
    }

    #[test]
    fn steals_from_a_host_at_its_share_only_when_two_or_more_short() {
        // 7 leases, 3 hosts: target 3. b and c hold 3 each, a holds 1.
        let seen = leases(&[Some("b"), Some("b"), Some("b"), Some("c"), Some("c"), Some("c"), Some("a")]);
        assert_eq!(plan("a", &seen, &workers(&[]), keep_order).steal.as_deref(), Some("s0"));
        // Holding 2 of a share of 3 is close enough: no stealing back and forth.
        let seen = leases(&[Some("b"), Some("b"), Some("b"), Some("c"), Some("c"), Some("a"), Some("a")]);
        assert_eq!(plan("a", &seen, &workers(&[]), keep_order), Plan::default());
    }

    #[test]
    fn expired_leases_are_free_and_their_owner_no_longer_counts() {
        // c's leases expired: two hosts left, 8 leases, target 4.
        let seen = leases(&[Some("a"), Some("a"), Some("a"), Some("b"), Some("b"), Some("b"), None, None]);
        let plan = plan("a", &seen, &workers(&["a", "b"]), keep_order);
        assert_eq!(plan.take, vec!["s6"], "short by one of 4");
    }

    #[test]
    fn no_leases_no_plan() {
        assert_eq!(plan("a", &[], &workers(&["a", "b"]), keep_order), Plan::default());
    }
}
