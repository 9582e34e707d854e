//! Snapshot → notification: what changed between the last inventory
//! snapshot of an event (per website, event and region) and the new one.
//!
//! Pure: the store keeps the previous snapshot's text and calls [`derive`]
//! inside the commit that stores the new one, so two concurrent snapshots
//! of one key are diffed in commit order.
//!
//! Change types (`changes` keys, in this order when present):
//! - `stock_increase`: an offer/section became available, appeared with
//!   stock, or its stock rose (SeatMap: the section aggregate rose, or one of
//!   its offers became active, appeared with stock or rose);
//! - `price_decrease` / `price_increase`: an available offer's `price`
//!   changed (SeatMap: per offer, reported under its section);
//! - `stock_decrease`: stock fell but something is left;
//! - `sold_out`: an offer/section that had stock has none (or vanished).
//!
//! Section names in `changes`: an OfferSections offer's `offer_name` (its key
//! when the name is empty), a SeatMapSections section's key. The first
//! snapshot of a key is compared against nothing: every available section is
//! a `stock_increase`.

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::timestamp::Timestamp;

/// The change types marquee computes, in the order they are written.
pub const CHANGE_TYPES: [&str; 5] = [
    "stock_increase",
    "price_decrease",
    "price_increase",
    "stock_decrease",
    "sold_out",
];

/// Which snapshot a notification belongs to: the last one is kept per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotKey {
    pub website: String,
    pub event_id: String,
    pub region: String,
}

/// What the publish path does with a new snapshot.
#[derive(Debug, Clone)]
pub struct Derived {
    pub key: SnapshotKey,
    /// The notification envelope (JSON text), when something changed.
    pub notification: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an inventory snapshot: {0}")]
pub struct NotASnapshot(pub String);

#[derive(Deserialize)]
struct Snapshot<'a> {
    website: String,
    region: String,
    event_id: String,
    sections_type: String,
    #[serde(borrow)]
    sections: &'a RawValue,
    #[serde(borrow)]
    stock: &'a RawValue,
    #[serde(borrow, default)]
    event_infos: Option<&'a RawValue>,
}

/// A JSON object's members in document order (whatever serde_json's map
/// ordering feature says).
pub(crate) struct Ordered<V>(pub Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Ordered<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
            type Value = Ordered<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some((k, x)) = m.next_entry::<String, V>()? {
                    v.push((k, x));
                }
                Ok(Ordered(v))
            }
        }
        d.deserialize_map(V2(std::marker::PhantomData))
    }
}

fn num(v: &Value, f: &str) -> Option<f64> {
    v.get(f).and_then(Value::as_f64)
}

/// One priced unit: an OfferSections offer, or an offer inside a SeatMap
/// section.
#[derive(Debug, Clone, PartialEq)]
struct Unit {
    id: String,
    available: bool,
    stock: f64,
    price: Option<f64>,
}

/// One section as compared: its name in `changes`, aggregate stock and
/// offers.
#[derive(Debug, Clone)]
struct Section {
    id: String,
    name: String,
    available: bool,
    stock: f64,
    offers: Vec<Unit>,
}

fn offer_sections(raw: &str) -> Result<Vec<Section>, NotASnapshot> {
    let m: Ordered<Value> = serde_json::from_str(raw).map_err(|e| NotASnapshot(e.to_string()))?;
    Ok(m.0
        .into_iter()
        .map(|(id, v)| {
            let stock = num(&v, "stock").unwrap_or(0.0);
            let available = v.get("available").and_then(Value::as_bool).unwrap_or(false) && stock > 0.0;
            let name = v
                .get("offer_name")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or(&id)
                .to_owned();
            let unit = Unit {
                id: id.clone(),
                available,
                stock,
                price: num(&v, "price"),
            };
            Section {
                id,
                name,
                available,
                stock,
                offers: vec![unit],
            }
        })
        .collect())
}

fn seatmap_sections(raw: &str) -> Result<Vec<Section>, NotASnapshot> {
    let m: Ordered<Ordered<Value>> = serde_json::from_str(raw).map_err(|e| NotASnapshot(e.to_string()))?;
    Ok(m.0
        .into_iter()
        .map(|(id, inner)| {
            let mut stock = 0.0;
            let mut offers = Vec::new();
            for (k, v) in inner.0 {
                if k == "stock" {
                    stock = v.as_f64().unwrap_or(0.0);
                } else if v.is_object() {
                    let s = num(&v, "stock").unwrap_or(0.0);
                    offers.push(Unit {
                        id: k,
                        available: v.get("is_active").and_then(Value::as_bool).unwrap_or(false) && s > 0.0,
                        stock: s,
                        price: num(&v, "price"),
                    });
                }
            }
            Section {
                name: id.clone(),
                id,
                available: stock > 0.0,
                stock,
                offers,
            }
        })
        .collect())
}

fn sections(sections_type: &str, raw: &str) -> Result<Vec<Section>, NotASnapshot> {
    match sections_type {
        "OfferSections" => offer_sections(raw),
        "SeatMapSections" => seatmap_sections(raw),
        other => Err(NotASnapshot(format!("unknown sections_type {other:?}"))),
    }
}

/// `changes`: change type → affected section names, in [`CHANGE_TYPES`]
/// order, only non-empty lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes(pub Vec<(&'static str, Vec<String>)>);

#[derive(Default)]
struct Acc([Vec<String>; 5]);

impl Acc {
    fn add(&mut self, i: usize, name: &str) {
        if !self.0[i].iter().any(|n| n == name) {
            self.0[i].push(name.to_owned());
        }
    }
}

const INC: usize = 0;
const PDEC: usize = 1;
const PINC: usize = 2;
const DEC: usize = 3;
const SOLD: usize = 4;

fn compare_unit(acc: &mut Acc, name: &str, new: &Unit, old: Option<&Unit>) {
    let Some(old) = old else {
        if new.available {
            acc.add(INC, name);
        }
        return;
    };
    match (old.available, new.available) {
        (false, true) => acc.add(INC, name),
        (true, true) if new.stock > old.stock => acc.add(INC, name),
        (true, true) if new.stock < old.stock => acc.add(DEC, name),
        _ => {}
    }
    if new.available
        && let (Some(n), Some(o)) = (new.price, old.price)
    {
        if n < o {
            acc.add(PDEC, name);
        } else if n > o {
            acc.add(PINC, name);
        }
    }
}

/// The changes from `prev` to `next` sections of one type; `seatmap` also
/// compares the section aggregates.
fn compare(prev: &[Section], next: &[Section], seatmap: bool) -> Changes {
    let mut acc = Acc::default();
    for s in next {
        let old = prev.iter().find(|p| p.id == s.id);
        if seatmap {
            match old {
                None if s.available => acc.add(INC, &s.name),
                Some(o) if s.stock > o.stock && s.available => acc.add(INC, &s.name),
                Some(o) if o.available && !s.available => acc.add(SOLD, &s.name),
                Some(o) if s.stock < o.stock => acc.add(DEC, &s.name),
                _ => {}
            }
            for u in &s.offers {
                let ou = old.and_then(|o| o.offers.iter().find(|x| x.id == u.id));
                compare_unit(&mut acc, &s.name, u, ou);
            }
            if let Some(o) = old {
                for ou in &o.offers {
                    if ou.available && !s.offers.iter().any(|u| u.id == ou.id) && s.available {
                        acc.add(DEC, &s.name);
                    }
                }
            }
        } else {
            let u = &s.offers[0];
            let ou = old.map(|o| &o.offers[0]);
            if ou.is_some_and(|o| o.available) && !u.available {
                acc.add(SOLD, &s.name);
            }
            compare_unit(&mut acc, &s.name, u, ou);
        }
    }
    for o in prev {
        if o.available && !next.iter().any(|s| s.id == o.id) {
            acc.add(SOLD, &o.name);
        }
    }
    // A sold-out section is not also a mere decrease.
    let sold = acc.0[SOLD].clone();
    acc.0[DEC].retain(|n| !sold.contains(n));
    Changes(
        CHANGE_TYPES
            .iter()
            .zip(acc.0)
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (*k, v))
            .collect(),
    )
}

/// The key of a snapshot, without computing anything.
pub fn key_of(next: &str) -> Result<SnapshotKey, NotASnapshot> {
    let s: Snapshot<'_> = serde_json::from_str(next).map_err(|e| NotASnapshot(e.to_string()))?;
    Ok(SnapshotKey {
        website: s.website,
        event_id: s.event_id,
        region: s.region,
    })
}

/// The changes between two snapshots (JSON texts); `prev` of another
/// `sections_type` (or none) compares against nothing.
pub fn changes(prev: Option<&str>, next: &str) -> Result<Changes, NotASnapshot> {
    let n: Snapshot<'_> = serde_json::from_str(next).map_err(|e| NotASnapshot(e.to_string()))?;
    let next_sections = sections(&n.sections_type, n.sections.get())?;
    let prev_sections = match prev.and_then(|p| serde_json::from_str::<Snapshot<'_>>(p).ok()) {
        Some(p) if p.sections_type == n.sections_type => {
            sections(&p.sections_type, p.sections.get()).unwrap_or_default()
        }
        _ => Vec::new(),
    };
    Ok(compare(
        &prev_sections,
        &next_sections,
        n.sections_type == "SeatMapSections",
    ))
}

#[derive(Serialize)]
struct Envelope<'a> {
    timestamp: String,
    website: &'a str,
    version: &'a str,
    event_id: &'a str,
    region: &'a str,
    changes: &'a RawValue,
    sections_type: &'a str,
    sections: &'a RawValue,
    stock: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_infos: Option<&'a RawValue>,
}

fn changes_json(c: &Changes) -> String {
    let mut out = String::from("{");
    for (i, (k, names)) in c.0.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(k).unwrap_or_default());
        out.push(':');
        out.push_str(&serde_json::to_string(names).unwrap_or_default());
    }
    out.push('}');
    out
}

/// Diffs `next` against `prev` and renders the §4 envelope when something
/// changed: `sections`, `stock` and `event_infos` are the new snapshot's own
/// text (`event_infos` omitted when the snapshot has none).
pub fn derive(prev: Option<&str>, next: &str, at: Timestamp) -> Result<Derived, NotASnapshot> {
    let n: Snapshot<'_> = serde_json::from_str(next).map_err(|e| NotASnapshot(e.to_string()))?;
    let key = SnapshotKey {
        website: n.website.clone(),
        event_id: n.event_id.clone(),
        region: n.region.clone(),
    };
    let c = changes(prev, next)?;
    if c.0.is_empty() {
        return Ok(Derived {
            key,
            notification: None,
        });
    }
    let cj = changes_json(&c);
    let changes_raw: Box<RawValue> = RawValue::from_string(cj).map_err(|e| NotASnapshot(e.to_string()))?;
    let env = Envelope {
        timestamp: at.to_rfc3339(),
        website: &n.website,
        version: super::VERSION,
        event_id: &n.event_id,
        region: &n.region,
        changes: &changes_raw,
        sections_type: &n.sections_type,
        sections: n.sections,
        stock: n.stock,
        event_infos: n.event_infos,
    };
    let text = serde_json::to_string(&env).map_err(|e| NotASnapshot(e.to_string()))?;
    Ok(Derived {
        key,
        notification: Some(text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(stock: i64, price: f64, available: bool) -> Value {
        serde_json::json!({"offer_name": "Floor GA", "available": available, "price": price,
            "price_label": format!("${price}"), "stock": stock, "atc": "https://x"})
    }

    fn snap(sections_type: &str, sections: Value) -> String {
        serde_json::json!({"website": "tm", "region": "US", "event_id": "e1",
            "sections_type": sections_type, "sections": sections, "stock": 1})
        .to_string()
    }

    fn ch(c: &Changes) -> Vec<(&str, Vec<&str>)> {
        c.0.iter()
            .map(|(k, v)| (*k, v.iter().map(String::as_str).collect()))
            .collect()
    }

    #[test]
    fn offers_first_snapshot_then_changes() {
        let a = snap("OfferSections", serde_json::json!({"ga": offer(2, 100.0, true)}));
        assert_eq!(
            ch(&changes(None, &a).unwrap()),
            vec![("stock_increase", vec!["Floor GA"])]
        );
        assert!(changes(Some(&a), &a).unwrap().0.is_empty());
        let b = snap("OfferSections", serde_json::json!({"ga": offer(5, 90.0, true)}));
        assert_eq!(
            ch(&changes(Some(&a), &b).unwrap()),
            vec![
                ("stock_increase", vec!["Floor GA"]),
                ("price_decrease", vec!["Floor GA"])
            ]
        );
        let c = snap("OfferSections", serde_json::json!({"ga": offer(5, 90.0, false)}));
        assert_eq!(
            ch(&changes(Some(&b), &c).unwrap()),
            vec![("sold_out", vec!["Floor GA"])]
        );
        let d = snap("OfferSections", serde_json::json!({"ga": offer(3, 95.0, true)}));
        assert_eq!(
            ch(&changes(Some(&c), &d).unwrap()),
            vec![
                ("stock_increase", vec!["Floor GA"]),
                ("price_increase", vec!["Floor GA"])
            ]
        );
    }

    #[test]
    fn seatmap_compares_aggregate_and_offers() {
        let o = |stock: i64, price: f64| {
            serde_json::json!({"offer_name": "Standard", "price": price, "price_without_fees": 1.0,
                "price_label": "$", "section": "101", "inventory_type": "primary", "is_active": true,
                "stock": stock, "stock_not_available": 0, "atc": "", "longest_adjacent_seats": 2,
                "general_admission": false})
        };
        let a = snap(
            "SeatMapSections",
            serde_json::json!({"sec-101": {"stock": 5, "o1": o(5, 95.0)}}),
        );
        let b = snap(
            "SeatMapSections",
            serde_json::json!({"sec-101": {"stock": 5, "o1": o(5, 80.0)}}),
        );
        assert_eq!(
            ch(&changes(Some(&a), &b).unwrap()),
            vec![("price_decrease", vec!["sec-101"])]
        );
        let c = snap(
            "SeatMapSections",
            serde_json::json!({"sec-101": {"stock": 0, "o1": o(0, 80.0)}}),
        );
        assert_eq!(
            ch(&changes(Some(&b), &c).unwrap()),
            vec![("sold_out", vec!["sec-101"])]
        );
        let d = snap(
            "SeatMapSections",
            serde_json::json!({"sec-101": {"stock": 7, "o1": o(7, 80.0)}}),
        );
        assert_eq!(
            ch(&changes(Some(&c), &d).unwrap()),
            vec![("stock_increase", vec!["sec-101"])]
        );
    }

    #[test]
    fn envelope_keeps_the_documents_field_order() {
        let a = snap("OfferSections", serde_json::json!({"ga": offer(2, 100.0, true)}));
        let d = derive(None, &a, Timestamp::from_micros(0)).unwrap();
        let n = d.notification.unwrap();
        assert!(n.starts_with(r#"{"timestamp":"1970-01-01T00:00:00Z","website":"tm","version":"1.0","event_id":"e1","region":"US","changes":{"stock_increase":["Floor GA"]},"sections_type":"OfferSections","sections":"#), "{n}");
        assert!(!n.contains("event_infos"));
    }
}
