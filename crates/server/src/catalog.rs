//! Which event types an organization knows, with their compiled schemas: the
//! built-in catalogs of its enabled profiles plus the types it defined
//! itself (`/v1/event-types`).
//!
//! Why a cache: the publish path needs this for every request, and neither
//! an organization's profiles nor its own types change often. Built-in
//! schemas are compiled once per process; an organization's view is loaded
//! from the store on first use and kept for [`TTL`] (so a change made on
//! another node or by the CLI applies within that), and dropped at once on
//! the node that made the change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use marquee_core::ids::OrgId;
use marquee_core::profile::catalog::{Coalesce, CompiledSchema, TypeDef, TypeRules};
use marquee_store::DynStore;

use crate::error::ApiResult;

/// How long an organization's loaded view is trusted.
pub const TTL: Duration = Duration::from_secs(5);
/// Organizations whose view is cached at most (the cache is cleared past it).
const MAX_CACHED: usize = 10_000;

/// A built-in type of one profile.
pub struct Builtin {
    pub profile: &'static str,
    pub def: &'static TypeDef,
    pub schema: Arc<CompiledSchema>,
}

/// Every built-in type of every profile, by type name, compiled once.
fn builtins() -> &'static HashMap<&'static str, Vec<Builtin>> {
    static B: OnceLock<HashMap<&'static str, Vec<Builtin>>> = OnceLock::new();
    B.get_or_init(|| {
        let mut m: HashMap<&'static str, Vec<Builtin>> = HashMap::new();
        for p in marquee_core::profile::REGISTRY {
            let Some(c) = p.catalog() else { continue };
            for def in &c.types {
                let schema = def
                    .compile()
                    .unwrap_or_else(|e| panic!("built-in schema {}/{}: {e}", p.name, def.name));
                m.entry(def.name.as_str()).or_default().push(Builtin {
                    profile: p.name,
                    def,
                    schema: Arc::new(schema),
                });
            }
        }
        m
    })
}

/// The built-in definition of `ty` among `profiles`, if any.
pub fn builtin<'a>(profiles: &[String], ty: &str) -> Option<&'a Builtin> {
    builtins()
        .get(ty)?
        .iter()
        .find(|b| profiles.iter().any(|p| p == b.profile))
}

/// Every built-in type of the enabled `profiles`, in catalog order.
pub fn builtins_of(profiles: &[String]) -> Vec<(&'static str, &'static TypeDef)> {
    let mut out = Vec::new();
    for p in marquee_core::profile::REGISTRY {
        if !profiles.iter().any(|e| e == p.name) {
            continue;
        }
        if let Some(c) = p.catalog() {
            out.extend(c.types.iter().map(|d| (p.name, d)));
        }
    }
    out
}

/// One of an organization's own types: its compiled schema and its
/// definition with the rules stored beside it.
struct OwnType {
    schema: CompiledSchema,
    def: TypeDef,
}

/// One organization's known types.
pub struct OrgRules {
    pub profiles: Vec<String>,
    own: HashMap<String, OwnType>,
    loaded: Instant,
}

impl OrgRules {
    /// The schema `ty` is checked against at publish, if it has one.
    pub fn schema(&self, ty: &str) -> Option<&CompiledSchema> {
        if let Some(t) = self.own.get(ty) {
            return Some(&t.schema);
        }
        builtin(&self.profiles, ty).map(|b| b.schema.as_ref())
    }

    /// The definition of `ty` with its rules (dedup, coalescing, projection,
    /// read models): the organization's own type of that name, else the
    /// built-in type of an enabled profile.
    pub fn def(&self, ty: &str) -> Option<&TypeDef> {
        if let Some(t) = self.own.get(ty) {
            return Some(&t.def);
        }
        builtin(&self.profiles, ty).map(|b| b.def)
    }

    /// The type's `coalesce` rule, if it has one.
    pub fn coalesce(&self, ty: &str) -> Option<&Coalesce> {
        self.def(ty)?.coalesce.as_ref()
    }

    /// The read-model fact a message of `ty` states (a door scan, a door
    /// opening, a drop or a claim), by its type's rule.
    pub fn derive(
        &self,
        ty: &str,
        data: &serde_json::Value,
        occurred_at: marquee_core::timestamp::Timestamp,
    ) -> Option<marquee_core::attendance::Derived> {
        let def = self.def(ty)?;
        if let Some(a) = &def.attendance {
            return a.extract(data, occurred_at);
        }
        def.drop.as_ref()?.extract(data)
    }

    /// Whether `ty` has a read-model rule (so ingest parses its payload).
    pub fn has_derivation(&self, ty: &str) -> bool {
        self.def(ty)
            .is_some_and(|d| d.attendance.is_some() || d.drop.is_some())
    }

    /// Whether the organization has enabled any profile (then endpoint type
    /// filters must name known types).
    pub fn profile_bound(&self) -> bool {
        !self.profiles.is_empty()
    }

    /// Whether `ty` is a type this organization knows: built-in, its own, or
    /// one of marquee's operational types.
    pub fn knows(&self, ty: &str) -> bool {
        self.own.contains_key(ty) || builtin(&self.profiles, ty).is_some() || OPERATIONAL.contains(&ty)
    }

    /// Every known type name (for checking `order.*` patterns).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.own
            .keys()
            .map(String::as_str)
            .chain(
                builtins_of(&self.profiles)
                    .into_iter()
                    .map(|(_, d)| d.name.as_str()),
            )
            .chain(OPERATIONAL.iter().copied())
    }
}

/// Types marquee itself publishes into an organization's log.
pub const OPERATIONAL: &[&str] = &[
    marquee_core::webhook::ops::ATTEMPT_FAILING,
    marquee_core::webhook::ops::ATTEMPT_EXHAUSTED,
    marquee_core::webhook::ops::ENDPOINT_DISABLED,
    marquee_core::webhook::ops::ENDPOINT_RECOVERED,
    marquee_core::webhook::ops::TEST,
];

/// Compiles a stored type: its schema and its rules. Rules that no longer
/// parse or check (written by another version) are dropped with a warning;
/// the schema is still enforced.
fn own_type(org: &OrgId, name: String, schema: &str, rules: Option<&str>) -> Result<OwnType, String> {
    let schema_value: serde_json::Value = serde_json::from_str(schema).map_err(|e| e.to_string())?;
    let compiled = CompiledSchema::compile(&schema_value).map_err(|e| e.to_string())?;
    let parsed = match rules {
        Some(r) => serde_json::from_str::<TypeRules>(r).map_err(|e| e.to_string()),
        None => Ok(TypeRules::default()),
    }
    .and_then(|r| {
        let def = r.into_def(name.clone(), String::new(), serde_json::Value::Null);
        def.check_rules().map(|()| def).map_err(|e| e.to_string())
    });
    let def = parsed.unwrap_or_else(|e| {
        tracing::warn!(org = %org, event_type = %name, error = %e, "stored event type rules do not apply; the schema still does");
        TypeRules::default().into_def(name.clone(), String::new(), serde_json::Value::Null)
    });
    Ok(OwnType {
        schema: compiled.named(name),
        def,
    })
}

#[derive(Default)]
pub struct Catalogs {
    cache: Mutex<HashMap<OrgId, Arc<OrgRules>>>,
}

impl Catalogs {
    /// The organization's rules, from the cache or the store.
    pub async fn org(&self, store: &DynStore, org: &OrgId) -> ApiResult<Arc<OrgRules>> {
        if let Ok(c) = self.cache.lock()
            && let Some(r) = c.get(org)
            && r.loaded.elapsed() < TTL
        {
            return Ok(r.clone());
        }
        let profiles = store.get_org(org).await?.map(|o| o.profiles).unwrap_or_default();
        let mut own = HashMap::new();
        for t in store.list_event_types(org).await? {
            match own_type(org, t.name.clone(), &t.schema, t.rules.as_deref()) {
                Ok(o) => {
                    own.insert(t.name, o);
                }
                Err(e) => {
                    tracing::warn!(org = %org, event_type = %t.name, error = %e, "stored event type does not compile; not enforced")
                }
            }
        }
        let rules = Arc::new(OrgRules {
            profiles,
            own,
            loaded: Instant::now(),
        });
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= MAX_CACHED {
                c.clear();
            }
            c.insert(org.clone(), rules.clone());
        }
        Ok(rules)
    }

    /// Drops the organization's cached view (after a change on this node).
    pub fn invalidate(&self, org: &OrgId) {
        if let Ok(mut c) = self.cache.lock() {
            c.remove(org);
        }
    }
}
