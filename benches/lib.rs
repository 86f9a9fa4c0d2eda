//! Benches live in `benches/`; comparison scripts beside this file. See README.md.
//!
//! As a library, what the `compare` and `local` harnesses share: the figures of one measured
//! tool run and how the reports print them ([`figures`], [`text`]), and the look-ups of where
//! and when a harness runs ([`host`]).

#[path = "harness/figures.rs"]
pub mod figures;
#[path = "harness/host.rs"]
pub mod host;
#[path = "harness/text.rs"]
pub mod text;
