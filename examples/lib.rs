//! Examples live beside this file; run them with `cargo run -p mailferry-examples --example NAME`.
