//! mailferry-mbox: under construction.
