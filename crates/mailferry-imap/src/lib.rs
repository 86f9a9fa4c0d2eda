//! mailferry-imap: under construction.
