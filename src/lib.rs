//! ferry: a pull-through caching container registry.
//!
//! Layers, each depending only on those below it:
//! `cli` (the `ferry` command line) → `server` → `registry` (OCI routes) /
//! `api` (management) → `manage` → `cache` → `store` / `upstream`,
//! with `domain` types shared by all and `config` read once at start-up.

#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod compress;
pub mod config;
pub mod datadir;
pub mod domain;
pub mod manage;
pub mod metrics;
pub mod origin;
#[cfg(test)]
mod proptests;
pub mod registry;
pub mod server;
pub mod session;
pub mod store;
pub mod tls;
pub mod upstream;
pub mod visibility;
pub mod web;
