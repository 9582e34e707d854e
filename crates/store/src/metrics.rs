//! What the group-commit writers of both backends report (through the
//! `metrics` facade: free without a recorder, atomics with one): one call
//! per group, never per message.

use std::time::Duration;

/// One group commit: its jobs, the messages it made durable, how long the
/// transaction took, whether it committed, and the log head after it.
pub fn group_committed(
    backend: &'static str,
    jobs: usize,
    messages: usize,
    took: Duration,
    ok: bool,
    head: u64,
) {
    let outcome = if ok { "committed" } else { "failed" };
    metrics::counter!("marquee_commit_groups_total", "backend" => backend, "outcome" => outcome).increment(1);
    metrics::histogram!("marquee_commit_group_size", "backend" => backend).record(jobs as f64);
    metrics::histogram!("marquee_commit_seconds", "backend" => backend).record(took.as_secs_f64());
    if ok {
        metrics::counter!("marquee_messages_committed_total", "backend" => backend)
            .increment(messages as u64);
        if head > 0 {
            metrics::gauge!("marquee_log_head_seq").set(head as f64);
        }
    }
}
