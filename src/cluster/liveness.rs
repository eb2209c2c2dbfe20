//! Liveness: every member probes every other one's `/healthz` each
//! `probe_interval` (bounded by `probe_timeout`), so who is responsible for
//! a key follows who answers, with no restart anywhere. A request that
//! finds a member dead marks it at once (`peer.rs`); the next probe that
//! gets an answer brings it back.

use std::sync::Arc;

use futures_util::future::join_all;

use super::Cluster;
use crate::metrics::METRICS;

impl Cluster {
    /// Probes the members for as long as the server runs (spawned by it).
    pub(crate) async fn watch(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(self.probe_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            // The list may change under us (SIGHUP): probe what it is now.
            let peers = self.peers();
            let answers = join_all(peers.iter().map(|m| self.probe(&m.url))).await;
            for (member, alive) in peers.iter().zip(answers) {
                self.set_alive(&member.url, alive);
            }
            METRICS.cluster_members_alive(self.alive_count());
        }
    }
}
