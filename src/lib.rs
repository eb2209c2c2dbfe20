//! ferry: a pull-through caching container registry.
//!
//! Layers, each depending only on those below it:
//! `cli` (the `ferry` command line) → `server` → `registry` (OCI routes) /
//! `api` (management) → `manage` → `cache` → `store` / `upstream`,
//! with `domain` types shared by all and `config` read once at start-up.
//! ARCHITECTURE.md draws the whole map; `scripts/check_layers.py` checks it.
//!
//! Public: `cli` (for `src/main.rs`), and `domain` and `store` (for the
//! metadata bench). Everything else is crate-private, and
//! `unreachable_pub` keeps a `pub` that nothing outside can reach from
//! creeping back.

#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod api;
mod auth;
mod bundle;
mod cache;
pub mod cli;
mod cluster;
mod compress;
mod config;
mod datadir;
pub mod domain;
mod manage;
mod metrics;
mod origin;
#[cfg(test)]
mod proptests;
mod registry;
mod server;
mod session;
pub mod store;
mod tls;
mod upstream;
mod visibility;
mod web;
