//! Replay from the durable log for resumes, and the retention check that
//! turns a too-old cursor into `cursor_expired`.

use marquee_core::ids::OrgId;
use marquee_core::names::Channel;
use marquee_store::{DynStore, MessageQuery, StoreError};

use super::bus::Frame;
use super::frame;

pub const PAGE: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("the cursor is older than the retained log")]
    Expired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One page of `channel`'s messages after `after_seq`, as frames, and whether
/// more follow. Checks retention *after* reading: if anything after
/// `after_seq` may have been pruned (before or during the read), the page
/// cannot be trusted to be gap-free and the answer is [`ReplayError::Expired`].
pub async fn page(
    store: &DynStore,
    org: &OrgId,
    channel: &Channel,
    after_seq: u64,
    limit: usize,
) -> Result<(Vec<Frame>, bool), ReplayError> {
    let query = MessageQuery {
        after_seq: Some(after_seq),
        channel: Some(channel.as_str().to_owned()),
        limit: limit.clamp(1, PAGE),
        ..MessageQuery::default()
    };
    let page = store.list_messages(org, &query).await?;
    // `retained_from_seq` is one past the last pruned seq (0: never pruned).
    let retained_from = store.retained_from_seq().await?;
    if retained_from > 0 && after_seq < retained_from - 1 {
        return Err(ReplayError::Expired);
    }
    let frames = page.messages.iter().map(|m| frame::render(m, channel)).collect();
    Ok((frames, page.has_more))
}
