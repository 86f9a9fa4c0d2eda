//! The conformance suite against Dovecot with the Maildir++ `'.'` hierarchy delimiter.

mod common;

mailferry_testkit::conformance_tests!(common::backend('.'));
