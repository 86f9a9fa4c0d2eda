//! The conformance suite against Dovecot with the `'/'` hierarchy delimiter (`LAYOUT=fs`).

mod common;

mailferry_testkit::conformance_tests!(common::backend('/'));
