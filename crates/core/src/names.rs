//! Message types and channels: the names integrators subscribe to.
//!
//! - type: `[a-z0-9][a-z0-9_.-]{0,63}` (`fan_checkin`, `order.completed`)
//! - channel: `kind:id`, kind `[a-z][a-z0-9_]{0,31}`, id `[A-Za-z0-9._~-]{1,128}`
//!   (`venue:stubbs-austin`, `event:evt_928xA`)

use std::fmt;
use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("type must match [a-z0-9][a-z0-9_.-]{{0,63}}")]
    BadType,
    #[error(
        "channel must be kind:id, kind matching [a-z][a-z0-9_]{{0,31}} and id matching [A-Za-z0-9._~-]{{1,128}}"
    )]
    BadChannel,
}

/// A validated message type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType(String);

impl EventType {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn from_trusted(s: String) -> Self {
        EventType(s)
    }
}

pub fn valid_type(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b'-'))
}

impl FromStr for EventType {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if valid_type(s) {
            Ok(EventType(s.to_owned()))
        } else {
            Err(NameError::BadType)
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated `kind:id` channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Channel(String);

pub fn valid_channel_kind(k: &str) -> bool {
    let b = k.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_lowercase()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

pub fn valid_channel_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'~' | b'-'))
}

impl Channel {
    /// Builds a channel from its kind and id given apart (as the Revolution
    /// stream protocol sends them).
    pub fn from_parts(kind: &str, id: &str) -> Result<Self, NameError> {
        if valid_channel_kind(kind) && valid_channel_id(id) {
            Ok(Channel(format!("{kind}:{id}")))
        } else {
            Err(NameError::BadChannel)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn kind(&self) -> &str {
        self.0.split_once(':').map(|(k, _)| k).unwrap_or("")
    }

    pub fn id(&self) -> &str {
        self.0.split_once(':').map(|(_, i)| i).unwrap_or("")
    }

    pub fn from_trusted(s: String) -> Self {
        Channel(s)
    }
}

impl FromStr for Channel {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((kind, id)) => Channel::from_parts(kind, id),
            None => Err(NameError::BadChannel),
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types() {
        for ok in ["fan_checkin", "order.completed", "a", "0", "x-y.z_1"] {
            assert!(ok.parse::<EventType>().is_ok(), "{ok}");
        }
        let long = "a".repeat(65);
        for bad in ["", "Fan", "_x", ".x", "a b", "é", long.as_str()] {
            assert!(bad.parse::<EventType>().is_err(), "{bad}");
        }
        assert!("a".repeat(64).parse::<EventType>().is_ok());
    }

    #[test]
    fn channels() {
        let c: Channel = "venue:stubbs-austin".parse().unwrap();
        assert_eq!((c.kind(), c.id()), ("venue", "stubbs-austin"));
        assert!("event:evt_928xA".parse::<Channel>().is_ok());
        assert!("a:~.-_".parse::<Channel>().is_ok());
        let long_id = format!("venue:{}", "a".repeat(129));
        for bad in [
            "venue",
            "venue:",
            ":x",
            "Venue:x",
            "1venue:x",
            "venue:a b",
            "venue:a:b",
            long_id.as_str(),
        ] {
            assert!(bad.parse::<Channel>().is_err(), "{bad}");
        }
        assert_eq!(
            Channel::from_parts("artist", "khruangbin").unwrap().as_str(),
            "artist:khruangbin"
        );
    }
}
