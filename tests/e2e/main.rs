//! ferry end-to-end tests: a real docker-registry upstream, the ferry binary
//! in between, and real clients (skopeo, podman, containerd's ctr,
//! raw HTTP) in front.
//!
//! Run: `cargo test --test e2e`. Needs on PATH `docker-registry`, `skopeo`,
//! `podman`, `containerd` and `ctr`, `htpasswd`, `openssl`, `tinyproxy`, and
//! `/bin/busybox` (Debian packages docker-registry skopeo podman containerd
//! apache2-utils openssl tinyproxy busybox-static).
//! `FERRY_E2E_LOG` sets ferry's RUST_LOG (default `debug`); a failing test
//! prints the tail of ferry's log. `harness_selftest` checks the harness
//! against docker-registry alone, to tell harness faults from ferry faults.
mod support;

mod auth;
mod bad_day;
mod browse;
mod cluster;
mod cluster_cache;
mod cluster_state;
mod complete_images;
mod containerd;
mod export;
mod faults;
mod first_hour_cli;
mod harness_selftest;
mod history;
mod import;
mod keygen;
mod management;
mod object_store;
mod offline;
mod ops;
mod partial_pull;
mod pins;
mod prefetch;
mod protocol_answers;
mod pull;
mod pulp_cli;
mod quota_per_cache;
mod registry_api;
mod s3_engine;
mod status_scale;
mod storage;
mod tag_policy;
mod trust_access;
mod trust_browser;
mod trust_edge;
mod trust_upstream;
mod upstream_budget;
mod upstream_tls;
