//! The agent crate's one integration-test binary (one link instead of one per file).

mod api;
mod assets;
mod backend;
mod binary;
mod checks;
mod config;
mod metrics;
mod node_exporter;
mod outbox;
mod reconnect;
mod socket;
mod statsd;
mod support;
mod transport;
