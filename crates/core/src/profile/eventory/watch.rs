//! Watchlist entries: their validation, and which notifications they let
//! through on each of the document's two endpoints (§6).
//!
//! `/notifications/subscribe` applies [`Entry::admits_basic`] (event
//! membership and the `change_type` key), `/subscribe/filtered`
//! [`Entry::admits`] (every field). Both read a [`Notice`], a notification
//! parsed once per node and shared by every connection it is offered to.
//! The README's Eventory section says field by field what each filter means
//! against each `sections_type`; this module is that text in code.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::diff::Ordered;
use crate::timestamp::Timestamp;

pub const DEFAULT_CHANGE_TYPE: &str = "stock_increase";
pub const MAX_KEYWORDS: usize = 20;
const MAX_TEXT: usize = 128;

/// The optional event-date window of an entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DateFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// One watchlist entry, as stored (JSON) and rendered. Field order is the
/// rendering order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Entry {
    pub event_id: String,
    pub change_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_price_filter: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_price_filter: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock_threshold_filter: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seat_quantity: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard_tickets: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resale_tickets: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub general_admission_tickets: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platinum_tickets: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_filter: Option<DateFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_filter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted_until: Option<String>,
}

/// Every field name an entry accepts, in rendering order.
pub const FIELDS: [&str; 15] = [
    "event_id",
    "change_type",
    "min_price_filter",
    "max_price_filter",
    "stock_threshold_filter",
    "seat_quantity",
    "section",
    "keywords",
    "standard_tickets",
    "resale_tickets",
    "general_admission_tickets",
    "platinum_tickets",
    "date_filter",
    "row_filter",
    "muted_until",
];

/// A refused field: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct Invalid {
    pub param: String,
    pub message: String,
}

fn bad(param: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        param: param.to_owned(),
        message: message.into(),
    }
}

fn text(v: &Value, f: &str, max: usize) -> Result<String, Invalid> {
    let s = v
        .as_str()
        .ok_or_else(|| bad(f, format!("{f} must be a string")))?;
    if s.trim().is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(bad(
            f,
            format!("{f} must be 1 to {max} characters without control characters"),
        ));
    }
    Ok(s.to_owned())
}

fn price(v: &Value, f: &str) -> Result<f64, Invalid> {
    match v.as_f64() {
        Some(p) if p.is_finite() && (0.0..=1e9).contains(&p) => Ok(p),
        _ => Err(bad(f, format!("{f} must be a number from 0 to 1000000000"))),
    }
}

fn int(v: &Value, f: &str, lo: u64, hi: u64) -> Result<u64, Invalid> {
    match v.as_u64() {
        Some(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(bad(f, format!("{f} must be an integer from {lo} to {hi}"))),
    }
}

fn flag(v: &Value, f: &str) -> Result<bool, Invalid> {
    v.as_bool()
        .ok_or_else(|| bad(f, format!("{f} must be true or false")))
}

fn instant(v: &Value, f: &str) -> Result<String, Invalid> {
    let s = v
        .as_str()
        .ok_or_else(|| bad(f, format!("{f} must be an RFC 3339 timestamp string")))?;
    Timestamp::parse_rfc3339(s).map_err(|_| {
        bad(
            f,
            format!("{f} must be an RFC 3339 timestamp, like 2026-06-15T20:00:00Z"),
        )
    })?;
    Ok(s.to_owned())
}

impl Entry {
    /// Builds an entry from a JSON object: every field type- and
    /// range-checked, unknown fields refused, `null` meaning absent.
    pub fn from_json(obj: &Map<String, Value>) -> Result<Entry, Invalid> {
        let mut e = Entry {
            change_type: DEFAULT_CHANGE_TYPE.to_owned(),
            ..Entry::default()
        };
        let mut has_event = false;
        for (k, v) in obj {
            if !FIELDS.contains(&k.as_str()) {
                return Err(bad(
                    k,
                    format!("unknown field {k:?}; an entry has: {}", FIELDS.join(", ")),
                ));
            }
            if v.is_null() {
                if k == "event_id" {
                    return Err(bad(k, "event_id is required"));
                }
                continue;
            }
            match k.as_str() {
                "event_id" => {
                    e.event_id = text(v, k, MAX_TEXT)?;
                    has_event = true;
                }
                "change_type" => {
                    let s = text(v, k, 64)?;
                    if !s
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    {
                        return Err(bad(
                            k,
                            "change_type is a change-type identifier: lower-case letters, digits and '_' (e.g. stock_increase)",
                        ));
                    }
                    e.change_type = s;
                }
                "min_price_filter" => e.min_price_filter = Some(price(v, k)?),
                "max_price_filter" => e.max_price_filter = Some(price(v, k)?),
                "stock_threshold_filter" => e.stock_threshold_filter = Some(int(v, k, 0, 1_000_000)?),
                "seat_quantity" => e.seat_quantity = Some(int(v, k, 1, 100)?),
                "section" => e.section = Some(text(v, k, MAX_TEXT)?),
                "keywords" => {
                    let a = v
                        .as_array()
                        .ok_or_else(|| bad(k, "keywords must be an array of strings"))?;
                    if a.is_empty() || a.len() > MAX_KEYWORDS {
                        return Err(bad(k, format!("keywords must list 1 to {MAX_KEYWORDS} strings")));
                    }
                    let mut out = Vec::with_capacity(a.len());
                    for (i, w) in a.iter().enumerate() {
                        out.push(text(w, &format!("keywords[{i}]"), 64)?);
                    }
                    e.keywords = Some(out);
                }
                "standard_tickets" => e.standard_tickets = Some(flag(v, k)?),
                "resale_tickets" => e.resale_tickets = Some(flag(v, k)?),
                "general_admission_tickets" => e.general_admission_tickets = Some(flag(v, k)?),
                "platinum_tickets" => e.platinum_tickets = Some(flag(v, k)?),
                "date_filter" => {
                    let o = v.as_object().ok_or_else(|| {
                        bad(
                            k,
                            "date_filter must be an object {\"from\", \"to\"} of RFC 3339 timestamps",
                        )
                    })?;
                    let mut d = DateFilter { from: None, to: None };
                    for (dk, dv) in o {
                        let p = format!("date_filter.{dk}");
                        match dk.as_str() {
                            "from" if !dv.is_null() => d.from = Some(instant(dv, &p)?),
                            "to" if !dv.is_null() => d.to = Some(instant(dv, &p)?),
                            "from" | "to" => {}
                            _ => return Err(bad(&p, "date_filter has only \"from\" and \"to\"")),
                        }
                    }
                    if d.from.is_none() && d.to.is_none() {
                        return Err(bad(k, "date_filter needs \"from\", \"to\" or both"));
                    }
                    if let (Some(f), Some(t)) = (&d.from, &d.to)
                        && parse(f) > parse(t)
                    {
                        return Err(bad(k, "date_filter.from is after date_filter.to"));
                    }
                    e.date_filter = Some(d);
                }
                "row_filter" => e.row_filter = Some(text(v, k, 32)?),
                "muted_until" => e.muted_until = Some(instant(v, k)?),
                _ => {}
            }
        }
        if !has_event {
            return Err(bad("event_id", "event_id is required"));
        }
        if let (Some(lo), Some(hi)) = (e.min_price_filter, e.max_price_filter)
            && lo > hi
        {
            return Err(bad(
                "min_price_filter",
                "min_price_filter is above max_price_filter",
            ));
        }
        Ok(e)
    }

    /// The entry as a JSON object (for a PATCH merge).
    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }

    /// `/notifications/subscribe`: the event is this entry's and `changes`
    /// has the entry's change type.
    pub fn admits_basic(&self, n: &Notice) -> bool {
        n.event_id == self.event_id && n.changes.iter().any(|(k, _)| *k == self.change_type)
    }

    /// `/notifications/subscribe/filtered`: every field of the entry.
    pub fn admits(&self, n: &Notice, now: Timestamp) -> bool {
        if !self.admits_basic(n) {
            return false;
        }
        if let Some(m) = &self.muted_until
            && now.as_micros() < parse(m)
        {
            return false;
        }
        if let Some(t) = self.stock_threshold_filter
            && n.stock < t as f64
        {
            return false;
        }
        let changed: &[String] = n
            .changes
            .iter()
            .find(|(k, _)| *k == self.change_type)
            .map(|(_, v)| v.as_slice())
            .unwrap_or(&[]);
        let sections: Vec<&Section> = n
            .sections
            .iter()
            .filter(|s| changed.iter().any(|c| s.answers_to(c)))
            .collect();
        if let Some(want) = &self.section {
            let hit = changed.iter().any(|c| c.eq_ignore_ascii_case(want))
                || sections
                    .iter()
                    .any(|s| s.offers.iter().any(|o| o.section.eq_ignore_ascii_case(want)));
            if !hit {
                return false;
            }
        }
        if let Some(words) = &self.keywords {
            let hay: Vec<String> = n
                .infos_text
                .iter()
                .cloned()
                .chain(changed.iter().map(|c| c.to_lowercase()))
                .chain(
                    sections
                        .iter()
                        .flat_map(|s| s.offers.iter().map(|o| o.name.to_lowercase())),
                )
                .collect();
            if !words
                .iter()
                .any(|w| hay.iter().any(|h| h.contains(&w.to_lowercase())))
            {
                return false;
            }
        }
        if let Some(d) = &self.date_filter {
            let Some(at) = n.event_date else { return false };
            if d.from.as_deref().is_some_and(|f| at < parse(f))
                || d.to.as_deref().is_some_and(|t| at > parse(t))
            {
                return false;
            }
        }
        if !self.has_offer_filters() {
            return true;
        }
        sections
            .iter()
            .flat_map(|s| s.offers.iter())
            .any(|o| self.offer_ok(o, n.seatmap))
    }

    fn has_offer_filters(&self) -> bool {
        self.min_price_filter.is_some()
            || self.max_price_filter.is_some()
            || self.seat_quantity.is_some()
            || self.row_filter.is_some()
            || self.standard_tickets.is_some()
            || self.resale_tickets.is_some()
            || self.general_admission_tickets.is_some()
            || self.platinum_tickets.is_some()
    }

    fn offer_ok(&self, o: &Offer, seatmap: bool) -> bool {
        let price_ok = |p: Option<f64>| match p {
            Some(p) => {
                self.min_price_filter.is_none_or(|lo| p >= lo)
                    && self.max_price_filter.is_none_or(|hi| p <= hi)
            }
            None => false,
        };
        if (self.min_price_filter.is_some() || self.max_price_filter.is_some()) && !price_ok(o.price) {
            return false;
        }
        if let Some(q) = self.seat_quantity {
            let have = if seatmap { o.adjacent } else { Some(o.stock) };
            if have.is_none_or(|h| h < q as f64) {
                return false;
            }
        }
        if let Some(r) = &self.row_filter {
            let r = r.to_lowercase();
            if !o.name.to_lowercase().contains(&r) && !o.section.to_lowercase().contains(&r) {
                return false;
            }
        }
        // A kind set to false excludes offers of that kind.
        let resale = o.inventory_type.as_deref() == Some("resale");
        let platinum = o.name.to_lowercase().contains("platinum");
        let ga = o.general_admission.unwrap_or(false);
        let standard = !resale && !platinum;
        for (on, is) in [
            (self.standard_tickets, standard),
            (self.resale_tickets, resale),
            (self.general_admission_tickets, ga),
            (self.platinum_tickets, platinum),
        ] {
            if on == Some(false) && is {
                return false;
            }
        }
        true
    }
}

fn parse(s: &str) -> i64 {
    Timestamp::parse_rfc3339(s).map(Timestamp::as_micros).unwrap_or(0)
}

/// One offer of a notification, as the filters read it.
#[derive(Debug, Clone, Default)]
pub struct Offer {
    pub name: String,
    /// SeatMap: the offer's `section` (venue-map label); Offer: empty.
    pub section: String,
    pub price: Option<f64>,
    pub stock: f64,
    pub adjacent: Option<f64>,
    pub inventory_type: Option<String>,
    pub general_admission: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct Section {
    pub key: String,
    pub offers: Vec<Offer>,
}

impl Section {
    /// Whether a name in `changes` refers to this section: its key, or an
    /// offer's `offer_name` (OfferSections) / `section` (SeatMap).
    fn answers_to(&self, name: &str) -> bool {
        self.key == name || self.offers.iter().any(|o| o.name == name || o.section == name)
    }
}

/// A notification as the filters read it, parsed once.
#[derive(Debug, Clone, Default)]
pub struct Notice {
    pub event_id: String,
    pub changes: Vec<(String, Vec<String>)>,
    pub seatmap: bool,
    pub sections: Vec<Section>,
    pub stock: f64,
    /// Lower-cased event_infos name, artist, venue and location.
    pub infos_text: Vec<String>,
    pub event_date: Option<i64>,
    /// The cooldown's content key (event, region, sections, changed
    /// sections, total stock).
    pub content: [u8; 32],
}

#[derive(Deserialize)]
struct Env<'a> {
    event_id: String,
    #[serde(default)]
    region: String,
    changes: Ordered<Vec<String>>,
    sections_type: String,
    #[serde(borrow)]
    sections: &'a RawValue,
    #[serde(borrow)]
    stock: &'a RawValue,
    #[serde(default)]
    event_infos: Option<Map<String, Value>>,
}

fn offer_of(v: &Value, seatmap: bool) -> Offer {
    let s = |f: &str| v.get(f).and_then(Value::as_str).unwrap_or("").to_owned();
    Offer {
        name: s("offer_name"),
        section: if seatmap { s("section") } else { String::new() },
        price: v.get("price").and_then(Value::as_f64),
        stock: v.get("stock").and_then(Value::as_f64).unwrap_or(0.0),
        adjacent: v.get("longest_adjacent_seats").and_then(Value::as_f64),
        inventory_type: v.get("inventory_type").and_then(Value::as_str).map(str::to_owned),
        general_admission: v.get("general_admission").and_then(Value::as_bool),
    }
}

impl Notice {
    /// Parses an `inventory.notification` envelope; `None` if it is not one.
    pub fn parse(text: &str) -> Option<Notice> {
        let e: Env<'_> = serde_json::from_str(text).ok()?;
        let seatmap = e.sections_type == "SeatMapSections";
        let raw: Ordered<Value> = serde_json::from_str(e.sections.get()).ok()?;
        let sections = raw
            .0
            .into_iter()
            .map(|(key, v)| {
                let offers = if seatmap {
                    v.as_object()
                        .map(|m| {
                            m.iter()
                                .filter(|(k, x)| *k != "stock" && x.is_object())
                                .map(|(_, x)| offer_of(x, true))
                                .collect()
                        })
                        .unwrap_or_default()
                } else {
                    vec![offer_of(&v, false)]
                };
                Section { key, offers }
            })
            .collect();
        let infos = e.event_infos.unwrap_or_default();
        let infos_text = ["event_name", "event_artist_name", "event_venue", "event_location"]
            .iter()
            .filter_map(|f| infos.get(*f).and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase)
            .collect();
        let event_date = infos
            .get("event_date")
            .and_then(Value::as_str)
            .and_then(|s| Timestamp::parse_rfc3339(s).ok())
            .map(Timestamp::as_micros);
        let changes: Vec<(String, Vec<String>)> = e.changes.0;
        let mut h = Sha256::new();
        for part in [
            e.event_id.as_str(),
            e.region.as_str(),
            e.sections.get(),
            e.stock.get(),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        for (k, v) in &changes {
            h.update((k.len() as u64).to_le_bytes());
            h.update(k.as_bytes());
            for s in v {
                h.update((s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
        }
        Some(Notice {
            event_id: e.event_id,
            changes,
            seatmap,
            sections,
            stock: e.stock.get().parse().unwrap_or(0.0),
            infos_text,
            event_date,
            content: h.finalize().into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v: Value) -> Result<Entry, Invalid> {
        Entry::from_json(v.as_object().unwrap())
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(entry(serde_json::json!({})).unwrap_err().param, "event_id");
        assert_eq!(
            entry(serde_json::json!({"event_id": "e", "seat_quantity": 0}))
                .unwrap_err()
                .param,
            "seat_quantity"
        );
        assert_eq!(
            entry(serde_json::json!({"event_id": "e", "muted_until": "tomorrow"}))
                .unwrap_err()
                .param,
            "muted_until"
        );
        assert_eq!(
            entry(serde_json::json!({"event_id": "e", "min_price_filter": 5, "max_price_filter": 1}))
                .unwrap_err()
                .param,
            "min_price_filter"
        );
        assert_eq!(
            entry(serde_json::json!({"event_id": "e", "nope": 1}))
                .unwrap_err()
                .param,
            "nope"
        );
        let e = entry(serde_json::json!({"event_id": "e"})).unwrap();
        assert_eq!(e.change_type, "stock_increase");
    }

    #[test]
    fn filters_read_the_changed_offers() {
        let n = Notice::parse(
            &serde_json::json!({"timestamp": "2026-01-01T00:00:00Z", "website": "w", "version": "1.0",
            "event_id": "e", "region": "US", "changes": {"stock_increase": ["Floor GA"]},
            "sections_type": "OfferSections",
            "sections": {"ga": {"offer_name": "Floor GA", "available": true, "price": 50.0, "price_label": "$50",
                "stock": 4, "atc": ""}}, "stock": 4})
            .to_string(),
        )
        .unwrap();
        let now = Timestamp::now();
        let ok = |v: Value| entry(v).unwrap().admits(&n, now);
        assert!(ok(serde_json::json!({"event_id": "e"})));
        assert!(!ok(serde_json::json!({"event_id": "x"})));
        assert!(ok(serde_json::json!({"event_id": "e", "max_price_filter": 60})));
        assert!(!ok(serde_json::json!({"event_id": "e", "max_price_filter": 40})));
        assert!(ok(serde_json::json!({"event_id": "e", "seat_quantity": 4})));
        assert!(!ok(serde_json::json!({"event_id": "e", "seat_quantity": 5})));
        assert!(ok(serde_json::json!({"event_id": "e", "keywords": ["floor"]})));
        assert!(!ok(
            serde_json::json!({"event_id": "e", "date_filter": {"from": "2026-01-01T00:00:00Z"}})
        ));
    }
}
