//! The conformance suite against Cyrus IMAP with its default `'.'` delimiter and every folder
//! under `INBOX.` (Debian's configuration).

mod common;

mailferry_testkit::conformance_tests!(common::cyrus_backend('.'));
