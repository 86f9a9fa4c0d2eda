//! mailferry-maildir: under construction.
