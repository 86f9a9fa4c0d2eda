//! The conformance suite against Cyrus IMAP with `'/'` (`unixhierarchysep`) and top-level
//! folders (`altnamespace`).

mod common;

mailferry_testkit::conformance_tests!(common::cyrus_backend('/'));
