//! marquee's integration tests: one binary, every test against a real server
//! (the library on port 0, or the `marquee` process where a test must kill it)
//! over real HTTP. `TEST_LOG=1` shows server logs.

mod helpers;

mod attendance;
mod catalogs;
mod cli;
mod cluster;
mod cluster_streams;
mod coalesce;
mod connections;
mod crash;
mod dashboard;
mod devcli;
mod erasure;
mod errors;
mod eventory;
mod first_run;
mod formats;
mod keys;
mod messages;
mod metrics;
mod openapi;
mod profiles;
mod readme;
mod roles;
mod rules;
mod stream_limits;
mod streams;
mod tls;
mod webhook_crash;
mod webhooks;
