//! marquee's integration tests: one binary, every test against a real server
//! (the library on port 0, or the `marquee` process where a test must kill it)
//! over real HTTP. `TEST_LOG=1` shows server logs.

mod helpers;

mod attendance;
mod catalogs;
mod cli;
mod cluster;
mod cluster_streams;
mod connections;
mod crash;
mod devcli;
mod errors;
mod first_run;
mod formats;
mod keys;
mod messages;
mod profiles;
mod readme;
mod roles;
mod stream_limits;
mod streams;
mod webhook_crash;
mod webhooks;
