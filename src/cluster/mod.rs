//! Several ferry nodes on one object store: who the members are, which of
//! them answer, which one is responsible for a key, and the signature the
//! members' requests to each other carry.
//!
//! Responsibility is rendezvous (highest-random-weight) hashing over the
//! members that answer: every node computes the same owner for a digest or
//! a repository without talking to the others, and a member that leaves or
//! comes back moves only its own keys. It is a dozen lines over sha2, so no
//! crate is worth its weight here.

mod liveness;
mod peer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};
use url::Url;

use crate::config::ClusterSettings;
use crate::domain::Secret;
use crate::store::unix_now;
pub(crate) use peer::{Bounds, PeerError};

/// The request header a member's request to another member carries.
pub(crate) const SIGNATURE_HEADER: &str = "ferry-cluster";

/// How far a signed request's clock may be from ours: replaying a captured
/// request later than this fails.
const SIGNATURE_WINDOW_SECS: u64 = 60;

/// One member and whether it answered its last probe.
#[derive(Debug)]
pub(crate) struct Member {
    pub url: Url,
    alive: AtomicBool,
}

impl Member {
    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }
}

/// Who does the work for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    /// This node.
    Me,
    /// Another member, by its address.
    Peer(Url),
}

/// This node's view of the cluster.
pub(crate) struct Cluster {
    me: Url,
    members: RwLock<Arc<Vec<Arc<Member>>>>,
    key: Secret,
    pub(crate) probe_interval: Duration,
    pub(crate) probe_timeout: Duration,
    /// The member-to-member client, built at its first use (`peer.rs`).
    http: OnceLock<Result<reqwest::Client, String>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("me", &self.me)
            .field("members", &self.members())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Every member counts as alive until a probe says otherwise.
    pub(crate) fn new(settings: &ClusterSettings) -> Arc<Cluster> {
        let cluster = Cluster {
            me: settings.me.clone(),
            members: RwLock::new(Arc::new(Vec::new())),
            key: settings.secret.clone(),
            probe_interval: Duration::from_millis(settings.probe_interval_ms),
            probe_timeout: Duration::from_millis(settings.probe_timeout_ms),
            http: OnceLock::new(),
        };
        cluster.set_nodes(&settings.nodes);
        Arc::new(cluster)
    }

    /// This node's address as the others reach it.
    pub(crate) fn me(&self) -> &Url {
        &self.me
    }

    /// The members (this node too), as last configured.
    pub(crate) fn members(&self) -> Arc<Vec<Arc<Member>>> {
        self.members
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The other members, alive or not.
    pub(crate) fn peers(&self) -> Vec<Arc<Member>> {
        self.members()
            .iter()
            .filter(|m| m.url != self.me)
            .cloned()
            .collect()
    }

    /// Replaces the member list (SIGHUP). Members kept keep their liveness.
    pub(crate) fn set_nodes(&self, nodes: &[Url]) {
        let old = self.members();
        let mut new: Vec<Arc<Member>> = nodes
            .iter()
            .map(|url| {
                old.iter()
                    .find(|m| &m.url == url)
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(Member {
                            url: url.clone(),
                            alive: AtomicBool::new(true),
                        })
                    })
            })
            .collect();
        if !new.iter().any(|m| m.url == self.me) {
            new.push(Arc::new(Member {
                url: self.me.clone(),
                alive: AtomicBool::new(true),
            }));
        }
        *self
            .members
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(new);
    }

    /// Records what a probe or a request to `url` found.
    pub(crate) fn set_alive(&self, url: &Url, alive: bool) {
        if url == &self.me {
            return;
        }
        if let Some(m) = self.members().iter().find(|m| &m.url == url) {
            if m.alive.swap(alive, Ordering::Relaxed) != alive {
                tracing::info!(member = %url, alive, "cluster member changed");
                crate::metrics::METRICS.cluster_members_alive(self.alive_count());
            }
        }
    }

    /// Whether `url` is a member that answered its last probe (this node
    /// always is; one no longer listed is not).
    pub(crate) fn is_alive(&self, url: &Url) -> bool {
        url == &self.me || self.members().iter().any(|m| &m.url == url && m.is_alive())
    }

    /// How many members answer now, this node included.
    pub(crate) fn alive_count(&self) -> usize {
        self.members()
            .iter()
            .filter(|m| m.url == self.me || m.is_alive())
            .count()
    }

    /// The live member responsible for `key` (a digest, or
    /// `<base_path>/<repository>`): highest `sha256(member, key)` wins.
    pub(crate) fn owner(&self, key: &str) -> Owner {
        self.owner_excluding(key, &[])
    }

    /// The owner among the live members not in `skipped` (those a request
    /// already tried).
    pub(crate) fn owner_excluding(&self, key: &str, skipped: &[Url]) -> Owner {
        let members = self.members();
        let best = members
            .iter()
            .filter(|m| m.url == self.me || (m.is_alive() && !skipped.contains(&m.url)))
            .max_by_key(|m| (score(&m.url, key), m.url.as_str().to_owned()));
        match best {
            Some(m) if m.url != self.me => Owner::Peer(m.url.clone()),
            _ => Owner::Me,
        }
    }

    /// The value of [`SIGNATURE_HEADER`] for a request this node sends.
    pub(crate) fn sign(&self, method: &str, path_and_query: &str) -> String {
        let t = unix_now();
        format!(
            "t={t},sig={}",
            hex::encode(self.mac(method, path_and_query, t))
        )
    }

    /// Whether `header` is a member's signature of this request, made
    /// within the window.
    pub(crate) fn verify(&self, method: &str, path_and_query: &str, header: &str) -> bool {
        let mut t = None;
        let mut sig = None;
        for part in header.split(',') {
            match part.trim().split_once('=') {
                Some(("t", v)) => t = v.parse::<u64>().ok(),
                Some(("sig", v)) => sig = hex::decode(v).ok(),
                _ => {}
            }
        }
        let (Some(t), Some(sig)) = (t, sig) else {
            return false;
        };
        if unix_now().abs_diff(t) > SIGNATURE_WINDOW_SECS {
            return false;
        }
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.key.expose().as_bytes()) else {
            return false;
        };
        mac.update(&signed_text(method, path_and_query, t));
        mac.verify_slice(&sig).is_ok()
    }

    /// HMAC takes a key of any length, so this is never empty in practice;
    /// an empty signature would only fail verification.
    fn mac(&self, method: &str, path_and_query: &str, t: u64) -> Vec<u8> {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.key.expose().as_bytes()) else {
            return Vec::new();
        };
        mac.update(&signed_text(method, path_and_query, t));
        mac.finalize().into_bytes().to_vec()
    }
}

fn signed_text(method: &str, path_and_query: &str, t: u64) -> Vec<u8> {
    format!("ferry-cluster/1\n{method}\n{path_and_query}\n{t}").into_bytes()
}

fn score(member: &Url, key: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(member.as_str().as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    let d = h.finalize();
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(me: &str, nodes: &[&str]) -> Arc<Cluster> {
        Cluster::new(&ClusterSettings {
            me: Url::parse(me).unwrap(),
            nodes: nodes.iter().map(|n| Url::parse(n).unwrap()).collect(),
            secret: Secret("k".into()),
            probe_interval_ms: 1000,
            probe_timeout_ms: 1000,
        })
    }

    const NODES: [&str; 3] = ["http://a:1/", "http://b:1/", "http://c:1/"];

    #[test]
    fn every_member_agrees_on_the_owner_and_keys_spread() {
        let views: Vec<_> = NODES.iter().map(|me| cluster(me, &NODES)).collect();
        let mut owned = [0; 3];
        for i in 0..300 {
            let key = format!("sha256:{i:064x}");
            let named: Vec<Url> = views
                .iter()
                .map(|v| match v.owner(&key) {
                    Owner::Me => v.me().clone(),
                    Owner::Peer(u) => u,
                })
                .collect();
            assert!(named.windows(2).all(|w| w[0] == w[1]), "{key}: {named:?}");
            owned[NODES.iter().position(|n| named[0].as_str() == *n).unwrap()] += 1;
        }
        assert!(owned.iter().all(|&n| n > 50), "{owned:?}");
    }

    #[test]
    fn a_dead_member_moves_only_its_own_keys() {
        let view = cluster(NODES[0], &NODES);
        let keys: Vec<String> = (0..200).map(|i| format!("repo/{i}")).collect();
        let before: Vec<Owner> = keys.iter().map(|k| view.owner(k)).collect();
        let c = Url::parse(NODES[2]).unwrap();
        view.set_alive(&c, false);
        for (key, was) in keys.iter().zip(before) {
            let now = view.owner(key);
            assert_ne!(now, Owner::Peer(c.clone()));
            if was != Owner::Peer(c.clone()) {
                assert_eq!(now, was, "{key} moved although its owner lives");
            }
        }
        view.set_nodes(&[Url::parse(NODES[0]).unwrap()]);
        assert!(keys.iter().all(|k| view.owner(k) == Owner::Me));
    }

    #[test]
    fn signatures_check_the_key_the_request_and_the_time() {
        let a = cluster(NODES[0], &NODES);
        let header = a.sign("GET", "/v2/x/blobs/sha256:00");
        assert!(a.verify("GET", "/v2/x/blobs/sha256:00", &header));
        assert!(!a.verify("GET", "/v2/y/blobs/sha256:00", &header));
        assert!(!a.verify("HEAD", "/v2/x/blobs/sha256:00", &header));
        let other_key = Cluster::new(&ClusterSettings {
            me: Url::parse(NODES[0]).unwrap(),
            nodes: vec![],
            secret: Secret("other".into()),
            probe_interval_ms: 1000,
            probe_timeout_ms: 1000,
        });
        assert!(!other_key.verify("GET", "/v2/x/blobs/sha256:00", &header));
        let old = format!(
            "t={},sig={}",
            unix_now() - 3600,
            hex::encode(a.mac("GET", "/p", unix_now() - 3600))
        );
        assert!(!a.verify("GET", "/p", &old));
        assert!(!a.verify("GET", "/p", "garbage"));
    }
}
