//! The agent crate's one integration-test binary (one link instead of one per file).

mod backend;
mod binary;
mod checks;
mod config;
mod metrics;
mod node_exporter;
mod reconnect;
mod statsd;
mod transport;
