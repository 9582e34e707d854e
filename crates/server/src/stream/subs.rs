//! A connection's set of subscriptions, shared by the WebSocket and SSE
//! endpoints: polled round-robin so one busy channel cannot starve the
//! others, and summed into one backlog for the slow-consumer check.

use std::future::{Future, poll_fn};
use std::task::{Context, Poll};

use futures_util::StreamExt;
use marquee_core::names::Channel;

use super::StreamConfig;
use super::bus::{Backlog, BoxSubscription, Frame, Lagged};

pub struct Sub {
    pub channel: Channel,
    pub stream: BoxSubscription,
    /// Highest seq delivered on this subscription (replayed or live).
    pub last_seq: u64,
}

/// The connection's subscriptions, polled round-robin.
#[derive(Default)]
pub struct Subs {
    pub list: Vec<Sub>,
    pub next: usize,
}

impl Subs {
    pub fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<(usize, Option<Result<Frame, Lagged>>)> {
        let n = self.list.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            if let Poll::Ready(item) = self.list[i].stream.poll_next_unpin(cx) {
                self.next = (i + 1) % n;
                return Poll::Ready((i, item));
            }
        }
        Poll::Pending
    }

    pub fn next_frame(&mut self) -> impl Future<Output = (usize, Option<Result<Frame, Lagged>>)> + '_ {
        poll_fn(move |cx| self.poll_frame(cx))
    }

    pub fn backlog(&self) -> Backlog {
        self.list.iter().fold(Backlog::default(), |acc, s| {
            let b = s.stream.backlog();
            Backlog {
                frames: acc.frames + b.frames,
                bytes: acc.bytes + b.bytes,
            }
        })
    }

    pub fn position(&self, ch: &Channel) -> Option<usize> {
        self.list.iter().position(|s| &s.channel == ch)
    }
}

pub fn over_limit(b: Backlog, cfg: &StreamConfig) -> bool {
    b.bytes > cfg.queue_bytes as u64 || b.frames > cfg.queue_frames as u64
}
