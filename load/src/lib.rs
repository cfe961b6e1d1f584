//! `fanout-load`: Fan-out's own load generator, the benchmark runner built on it, and the tool
//! that draws the book's figures from what the runner measured.
//!
//! The generator connects N reading clients to a Fan-out server on this machine, over a ramp; S
//! of them also send, at a fixed rate or as fast as a window of messages in flight allows. Every
//! message carries its sender, its sequence number and its send time (see [`payload`]), so every
//! client can count what it received, what is missing, what came out of order, and how long each
//! message took (one HDR histogram per client, merged at the end: see [`tally`]). It can add
//! clients that never read, and sample the server's memory and CPU from `/proc` by pid. A run is
//! bounded in time and count, stops by itself, and ends in one JSON line ([`report::Report`]).
//!
//! - [`scenario`]: the flags, the named scenarios (s1, s2, s3, idle, stall) and the checked plan;
//! - [`target`]: the loopback-only URL check;
//! - [`client`]: connecting, reading, sending at a pace, over the lean client of [`wire`];
//! - [`run`]: the phases of a run and the report;
//! - [`bench`]: starting a chapter's binary and running scenarios against it into a results file;
//! - [`plot`]: the SVG figures and the Markdown table drawn from a results file.

pub mod bench;
pub mod client;
pub mod payload;
pub mod plot;
pub mod report;
pub mod run;
pub mod scenario;
pub mod system;
pub mod tally;
pub mod target;
pub mod verdict;
pub mod wire;

pub use report::Report;
pub use run::run;
pub use scenario::{Flags, Plan, Scenario};
