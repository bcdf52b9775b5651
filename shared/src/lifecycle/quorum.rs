//! Quorum arithmetic for peers that leave: which departed dead voters to remove first,
//! and whether a leaving voter can go without costing the cluster its quorum. Voting
//! comes from the Raft configuration (autopilot's status lags right after an election),
//! health from autopilot.

use std::collections::BTreeSet;

use crate::vault::{AutopilotState, RaftServer};

/// The voters that would remain without `gone`, and how many of them are healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VotersLeft {
    /// Voters in the configuration once `gone` are removed.
    pub voters: usize,
    /// Of those, the ones autopilot judges healthy.
    pub healthy: usize,
}

impl VotersLeft {
    /// Counts the voters of `peers` not in `gone`.
    pub fn without(peers: &[RaftServer], state: &AutopilotState, gone: &[&str]) -> Self {
        let remaining = peers
            .iter()
            .filter(|p| p.voter && !gone.contains(&p.node_id.as_str()));
        let (voters, healthy) = remaining.fold((0, 0), |(v, h), p| {
            (v + 1, h + usize::from(is_healthy(state, &p.node_id)))
        });
        Self { voters, healthy }
    }

    /// The majority of the voters left.
    pub fn quorum(&self) -> usize {
        self.voters / 2 + 1
    }

    /// At least one voter is left and a majority of them is healthy.
    pub fn has_quorum(&self) -> bool {
        self.voters > 0 && self.healthy >= self.quorum()
    }
}

fn is_healthy(state: &AutopilotState, id: &str) -> bool {
    state.servers.get(id).is_some_and(|s| s.healthy)
}

/// The failure tolerance the cluster keeps if `leaving` is removed: voters left (as Raft
/// has them) that autopilot judges healthy, beyond the quorum of the voters left.
/// Autopilot's own status lags the configuration right after an election, so voting
/// comes from the Raft configuration and only health from autopilot.
pub fn tolerance_without(peers: &[RaftServer], state: &AutopilotState, leaving: &str) -> u32 {
    let left = VotersLeft::without(peers, state, &[leaving]);
    left.healthy.saturating_sub(left.quorum()) as u32
}

/// Whether removing `leaving` lowers the failure tolerance the cluster has now. Only a
/// healthy voter's removal does: a voter already dead (its node gone) counts in the
/// quorum and votes for nothing, so waiting for a replacement before removing it gains
/// nothing.
pub fn removal_lowers_tolerance(
    peers: &[RaftServer],
    state: &AutopilotState,
    leaving: &str,
) -> bool {
    let now = VotersLeft::without(peers, state, &[]);
    let tolerance_now = now.healthy.saturating_sub(now.quorum()) as u32;
    tolerance_without(peers, state, leaving) < tolerance_now
}

/// Members that are not voters yet (not a peer, or a non-voter autopilot has not
/// promoted): replacements still joining. A voter judged unhealthy for a moment (as
/// right after an election) is not one.
pub fn joining(peers: &[RaftServer], members: &BTreeSet<String>, leaving: &str) -> Vec<String> {
    members
        .iter()
        .filter(|m| m.as_str() != leaving)
        .filter(|m| !peers.iter().any(|p| &p.node_id == *m && p.voter))
        .cloned()
        .collect()
}

/// What a terminate does about the leaving peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeavePlan {
    /// Voters whose instance has left the group and that autopilot judges unhealthy:
    /// removed first, one at a time, each removal keeping quorum.
    pub remove_first: Vec<String>,
    /// Why the leaving peer must not go now, if it must not: its removal (or its
    /// instance's end) would leave the cluster without a quorum.
    pub hold: Option<String>,
}

/// Plans the departure of `leaving`. `members` are the group's instances that stay
/// (InService and Pending); any other peer has departed or is departing.
pub fn plan_leave(
    peers: &[RaftServer],
    state: &AutopilotState,
    members: &BTreeSet<String>,
    leaving: &str,
) -> LeavePlan {
    let leaving_votes = peers.iter().any(|p| p.node_id == leaving && p.voter);
    let remove_first: Vec<String> = peers
        .iter()
        .filter(|p| p.voter && p.node_id != leaving)
        .filter(|p| !members.contains(&p.node_id))
        // Judged unhealthy, not merely unreported (as right after an election).
        .filter(|p| state.servers.get(&p.node_id).is_some_and(|s| !s.healthy))
        .map(|p| p.node_id.clone())
        .collect();
    if !leaving_votes {
        // A non-voter counts for no quorum: it can always go.
        return LeavePlan {
            remove_first,
            hold: None,
        };
    }
    let mut gone: Vec<&str> = remove_first.iter().map(String::as_str).collect();
    gone.push(leaving);
    let left = VotersLeft::without(peers, state, &gone);
    let hold = if left.voters == 0 {
        Some(format!("{leaving} is the cluster's last voter"))
    } else if !left.has_quorum() {
        Some(format!(
            "without {leaving} {} of {} voters would be healthy, under a quorum of {}",
            left.healthy,
            left.voters,
            left.quorum()
        ))
    } else {
        None
    };
    LeavePlan { remove_first, hold }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::vault::AutopilotServer;

    /// (id, raft voter, autopilot healthy)
    fn cluster(servers: &[(&str, bool, bool)]) -> (Vec<RaftServer>, AutopilotState) {
        let peers = servers
            .iter()
            .map(|(id, voter, _)| RaftServer {
                node_id: id.to_string(),
                address: format!("{id}:8201"),
                leader: false,
                voter: *voter,
            })
            .collect();
        let servers = servers
            .iter()
            .map(|(id, _, healthy)| {
                let server = AutopilotServer {
                    id: id.to_string(),
                    healthy: *healthy,
                    status: "voter".into(),
                    last_contact: None,
                    stable_since: None,
                };
                (id.to_string(), server)
            })
            .collect::<BTreeMap<_, _>>();
        let state = AutopilotState {
            healthy: false,
            failure_tolerance: 0,
            leader: Some("a".into()),
            servers,
        };
        (peers, state)
    }

    fn members(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_follower_of_three_healthy_voters_can_go() {
        let (p, s) = cluster(&[("a", true, true), ("b", true, true), ("c", true, true)]);
        let plan = plan_leave(&p, &s, &members(&["a", "b"]), "c");
        assert_eq!(plan.hold, None);
        assert!(plan.remove_first.is_empty());
    }

    #[test]
    fn a_dead_departed_voter_is_removed_first_and_the_leaver_then_goes() {
        // c's instance is gone and c is dead; b leaves: without removing c first, {a, c}
        // would have 1 healthy of 2 voters.
        let (p, s) = cluster(&[("a", true, true), ("b", true, true), ("c", true, false)]);
        let plan = plan_leave(&p, &s, &members(&["a"]), "b");
        assert_eq!(plan.remove_first, vec!["c".to_owned()]);
        assert_eq!(plan.hold, None);
    }

    #[test]
    fn a_dead_voter_that_is_still_a_member_makes_the_leaver_wait() {
        let (p, s) = cluster(&[("a", true, true), ("b", true, true), ("c", true, false)]);
        let plan = plan_leave(&p, &s, &members(&["a", "c"]), "b");
        assert!(plan.remove_first.is_empty());
        let hold = plan.hold.unwrap_or_default();
        assert!(hold.contains("1 of 2 voters would be healthy"), "{hold}");
    }

    #[test]
    fn the_last_voter_is_held_and_a_non_voter_always_goes() {
        let (p, s) = cluster(&[("a", true, true), ("d", false, true)]);
        let held = plan_leave(&p, &s, &members(&["d"]), "a").hold;
        assert!(held.is_some_and(|h| h.contains("last voter")));
        assert_eq!(plan_leave(&p, &s, &members(&["a"]), "d").hold, None);
    }

    #[test]
    fn tolerance_counts_healthy_voters_beyond_quorum() {
        let (p, s) = cluster(&[("a", true, true), ("b", true, true), ("c", true, true)]);
        assert_eq!(tolerance_without(&p, &s, "c"), 0, "2 voters: quorum 2");
        let (p, s) = cluster(&[
            ("a", true, true),
            ("b", true, true),
            ("c", true, true),
            ("d", true, true),
        ]);
        assert_eq!(tolerance_without(&p, &s, "d"), 1, "3 voters: quorum 2");
        let (p, s) = cluster(&[
            ("a", true, true),
            ("b", true, true),
            ("c", true, true),
            ("d", false, true),
        ]);
        assert_eq!(
            tolerance_without(&p, &s, "c"),
            0,
            "a non-voter does not count"
        );
        let (p, s) = cluster(&[
            ("a", true, true),
            ("b", true, false),
            ("c", true, true),
            ("d", true, true),
        ]);
        assert_eq!(
            tolerance_without(&p, &s, "d"),
            0,
            "an unhealthy voter adds no tolerance"
        );
    }

    #[test]
    fn only_a_healthy_voters_removal_lowers_the_tolerance() {
        let (p, s) = cluster(&[("a", true, true), ("b", true, true), ("c", true, true)]);
        assert!(removal_lowers_tolerance(&p, &s, "c"), "1 -> 0");
        let (p, s) = cluster(&[("a", true, true), ("b", true, true), ("c", true, false)]);
        assert!(
            !removal_lowers_tolerance(&p, &s, "c"),
            "a dead voter: 0 -> 0"
        );
        let (p, s) = cluster(&[("a", true, true), ("b", true, true), ("c", false, true)]);
        assert!(!removal_lowers_tolerance(&p, &s, "c"), "a non-voter");
    }

    #[test]
    fn a_member_that_is_not_a_voter_yet_is_joining() {
        let (p, _) = cluster(&[
            ("a", true, true),
            ("b", true, true),
            ("d", false, true),
            ("e", true, false),
        ]);
        let members: BTreeSet<String> = ["a", "b", "c", "d", "e"].map(String::from).into();
        assert_eq!(
            joining(&p, &members, "a"),
            vec!["c".to_owned(), "d".to_owned()]
        );
    }
}
