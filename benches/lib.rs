//! Benches live in `benches/`; comparison scripts beside this file. See README.md.
