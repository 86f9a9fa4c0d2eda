//! mailferry-state: under construction.
