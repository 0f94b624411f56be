//! StatsD for Picket's agent, without I/O: a line parser and an aggregator.
//!
//! * [`parse_line`] / [`parse_datagram`]: the wire format, `<name>:<value>|<c|g|ms|h|s>`
//!   with optional `|@<rate>` and DogStatsD `|#tag:v,tag2` sections; pure functions over
//!   bytes that borrow from their input and never allocate.
//! * [`Aggregator`]: counters, gauges (absolute and deltas), timers and histograms
//!   (gostatsd's statistics and percentiles), sets; series keyed by name and sorted tags,
//!   flushed as points named the way Sensu's StatsD backend names them, expired after five
//!   idle minutes.
//!
//! The socket, the flush timer and what the points become live with the caller (Picket's
//! agent); this crate knows nothing about them. The fuzz target for the parser is in
//! `fuzz/` (see the README).

mod aggregate;
mod parse;

pub use aggregate::{
    Aggregator, AggregatorConfig, ConfigError, DEFAULT_EXPIRY, DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_SERIES, DEFAULT_PERCENTILES, DatagramStats, FlushedPoint, Kind, SeriesTag,
    Snapshot,
};
pub use parse::{
    Datagram, MAX_LINE_LEN, Metric, ParseError, Tag, Tags, Value, parse_datagram, parse_line,
};
