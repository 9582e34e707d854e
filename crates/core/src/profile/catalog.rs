//! Event catalogs: the message types a platform publishes, each with a JSON Schema for its `data`.
//!
//! A catalog is plain data (`catalogs/<profile>.json`, embedded at build time): for every type a
//! one-line description, a JSON Schema 2020-12 for the payload, and the delivery rules the store
//! applies to it (dedup key, coalescing window, projection). The schemas are written from the
//! reference documents in `shared/reference/`: required fields are the fields a document shows,
//! extra fields are always allowed.
//!
//! [`CompiledSchema`] is the publish-time check: compiled once, then [`CompiledSchema::validate`]
//! answers with the first failing field as a [`Violation`] (`data.fan_id`, `data.sections.sec-101.stock`)
//! and a sentence a person can act on. Only local `$ref`s (`#…`) are accepted, so compiling never
//! fetches anything.
//!
//! Architecture invariant: nothing here reads the network or the disk; the catalog files are
//! `include_str!`ed and referenced schemas must live in the same document.

use std::fmt::Write as _;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{Draft, JsonType, ValidationError, Validator};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::names::valid_type;

/// The one dialect accepted in `$schema`.
pub const DIALECT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// A profile's event catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub profile: String,
    pub types: Vec<TypeDef>,
}

/// One message type of a catalog: its name, its payload schema and its delivery rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeDef {
    /// The message type (`fan_checkin`, `application.approved`); `"type"` in JSON.
    #[serde(rename = "type")]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// JSON Schema 2020-12 for the message's `data`.
    pub schema: Value,
    /// JSON pointers into `data` whose values together identify a duplicate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup: Option<Vec<String>>,
    /// How long a dedup key is remembered, in milliseconds; absent: as long
    /// as the message that first used it is retained (the log's retention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_window_ms: Option<u64>,
    /// Messages with the same key within the window collapse into the latest one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coalesce: Option<Coalesce>,
    /// The message maintains a projection (a current-state row) of an entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<Project>,
    /// The message is a door scan or a door opening for the attendance
    /// engine ([`crate::attendance`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attendance: Option<crate::attendance::AttendanceRule>,
    /// The message publishes or claims a drop (Revolution's drops read model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<crate::attendance::DropRule>,
}

/// The per-type rules of a [`TypeDef`] without its name, description and
/// schema: what an organization's own type (`PUT /v1/event-types/{type}`)
/// stores beside its schema, so its types take every rule a built-in
/// catalog type can.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeRules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_window_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coalesce: Option<Coalesce>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<Project>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attendance: Option<crate::attendance::AttendanceRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<crate::attendance::DropRule>,
}

impl TypeRules {
    pub fn is_empty(&self) -> bool {
        *self == TypeRules::default()
    }

    /// The type these rules belong to.
    pub fn into_def(self, name: String, description: String, schema: Value) -> TypeDef {
        TypeDef {
            name,
            description,
            schema,
            dedup: self.dedup,
            dedup_window_ms: self.dedup_window_ms,
            coalesce: self.coalesce,
            project: self.project,
            attendance: self.attendance,
            drop: self.drop,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coalesce {
    /// JSON pointer into `data` naming the coalescing key (`/activity_id`).
    pub key: String,
    pub window_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// The projected entity kind (`events`).
    pub kind: String,
    /// JSON pointer into `data` to the entity id.
    pub id: String,
    /// JSON pointer into `data` to a version that only grows (`/updated_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// JSON pointer into `data` to an RFC 3339 timestamp a platform lists the
    /// entities by (`/created_at`: Eventium's `GET /v1/events`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    /// The message removes the entity instead of upserting it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog is not valid JSON for a catalog: {0}")]
    Json(#[from] serde_json::Error),
    #[error("catalog profile must not be empty")]
    EmptyProfile,
    #[error("catalog {profile}: type {name:?} must match [a-z0-9][a-z0-9_.-]{{0,63}}")]
    BadTypeName { profile: String, name: String },
    #[error("catalog {profile}: type {name} is defined twice")]
    DuplicateType { profile: String, name: String },
    #[error("catalog {profile}: type {name}: {source}")]
    Rule {
        profile: String,
        name: String,
        #[source]
        source: RuleError,
    },
}

/// A delivery rule of a [`TypeDef`] that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("{field} is {pointer:?}, not a JSON pointer into data: {reason}")]
    BadPointer {
        field: String,
        pointer: String,
        reason: &'static str,
    },
    #[error("dedup must name at least one field")]
    EmptyDedup,
    #[error("coalesce.window_ms must be greater than 0")]
    ZeroWindow,
    #[error("dedup_window_ms needs a dedup key and must be greater than 0")]
    BadDedupWindow,
    #[error("project.kind {0:?} must match [a-z][a-z0-9_-]{{0,63}}")]
    BadProjectKind(String),
}

impl Catalog {
    /// Parses a catalog document and checks its names and rules (not its schemas: see
    /// [`TypeDef::compile`]).
    pub fn parse(json: &str) -> Result<Catalog, CatalogError> {
        let catalog: Catalog = serde_json::from_str(json)?;
        if catalog.profile.is_empty() {
            return Err(CatalogError::EmptyProfile);
        }
        let profile = &catalog.profile;
        for (i, t) in catalog.types.iter().enumerate() {
            if !valid_type(&t.name) {
                return Err(CatalogError::BadTypeName {
                    profile: profile.clone(),
                    name: t.name.clone(),
                });
            }
            if catalog.types[..i].iter().any(|u| u.name == t.name) {
                return Err(CatalogError::DuplicateType {
                    profile: profile.clone(),
                    name: t.name.clone(),
                });
            }
            t.check_rules().map_err(|source| CatalogError::Rule {
                profile: profile.clone(),
                name: t.name.clone(),
                source,
            })?;
        }
        Ok(catalog)
    }

    pub fn get(&self, name: &str) -> Option<&TypeDef> {
        self.types.iter().find(|t| t.name == name)
    }
}

impl TypeDef {
    /// The type's rules without its name, description and schema.
    pub fn rules(&self) -> TypeRules {
        TypeRules {
            dedup: self.dedup.clone(),
            dedup_window_ms: self.dedup_window_ms,
            coalesce: self.coalesce.clone(),
            project: self.project.clone(),
            attendance: self.attendance.clone(),
            drop: self.drop.clone(),
        }
    }

    /// Checks the delivery rules: JSON pointer syntax, a non-empty dedup key, a positive window.
    pub fn check_rules(&self) -> Result<(), RuleError> {
        if let Some(dedup) = &self.dedup {
            if dedup.is_empty() {
                return Err(RuleError::EmptyDedup);
            }
            for (i, p) in dedup.iter().enumerate() {
                check_pointer(&format!("dedup[{i}]"), p)?;
            }
        }
        if let Some(w) = self.dedup_window_ms
            && (w == 0 || self.dedup.is_none())
        {
            return Err(RuleError::BadDedupWindow);
        }
        if let Some(c) = &self.coalesce {
            check_pointer("coalesce.key", &c.key)?;
            if c.window_ms == 0 {
                return Err(RuleError::ZeroWindow);
            }
        }
        if let Some(p) = &self.project {
            let k = p.kind.as_bytes();
            let kind_ok = !k.is_empty()
                && k.len() <= 64
                && k[0].is_ascii_lowercase()
                && k.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-'));
            if !kind_ok {
                return Err(RuleError::BadProjectKind(p.kind.clone()));
            }
            check_pointer("project.id", &p.id)?;
            if let Some(v) = &p.version {
                check_pointer("project.version", v)?;
            }
            if let Some(v) = &p.sort {
                check_pointer("project.sort", v)?;
            }
        }
        if let Some(a) = &self.attendance {
            for (field, p) in a.pointers() {
                check_pointer(field, p)?;
            }
        }
        if let Some(d) = &self.drop {
            for (field, p) in d.pointers() {
                check_pointer(field, p)?;
            }
        }
        Ok(())
    }

    /// Compiles this type's schema; violations name the type ("… is required by fan_checkin").
    pub fn compile(&self) -> Result<CompiledSchema, SchemaError> {
        Ok(CompiledSchema::compile(&self.schema)?.named(&self.name))
    }
}

/// RFC 6901 syntax, restricted to pointers below the root (`/id`, `/a~1b/0`).
fn check_pointer(field: &str, pointer: &str) -> Result<(), RuleError> {
    let bad = |reason| {
        Err(RuleError::BadPointer {
            field: field.to_owned(),
            pointer: pointer.to_owned(),
            reason,
        })
    };
    if !pointer.starts_with('/') {
        return bad("it must start with /");
    }
    let b = pointer.as_bytes();
    for (i, c) in b.iter().enumerate() {
        if *c == b'~' && !matches!(b.get(i + 1), Some(b'0' | b'1')) {
            return bad("~ must be followed by 0 or 1");
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Schemas

/// A schema that cannot be used for validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("$schema at {at} is {found}; only JSON Schema 2020-12 ({DIALECT_2020_12}) is accepted")]
    Dialect { at: String, found: String },
    #[error(
        "{keyword} at {at} is {reference:?}; only local references (starting with #) are accepted, \
         put the referenced schema under $defs"
    )]
    NonLocalRef {
        keyword: &'static str,
        at: String,
        reference: String,
    },
    #[error("schema is not valid JSON Schema 2020-12: at {at}: {message}")]
    Invalid { at: String, message: String },
}

/// A compiled payload schema: compile once, validate every publish.
#[derive(Debug, Clone)]
pub struct CompiledSchema {
    validator: Validator,
    name: Option<String>,
}

/// Why a payload does not match its schema: the failing field and a sentence about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct Violation {
    /// The failing field, from the message's point of view: `data`, `data.fan_id`,
    /// `data.sections.sec-101.stock`, `data.attachments[0]`.
    pub param: String,
    /// `data.fan_id is required by fan_checkin`, `data.count must be an integer, got string`.
    pub message: String,
}

impl CompiledSchema {
    /// Compiles a JSON Schema 2020-12 document. Refuses other dialects, references outside the
    /// document, and schemas the 2020-12 meta-schema rejects.
    pub fn compile(schema: &Value) -> Result<CompiledSchema, SchemaError> {
        let mut at = String::new();
        check_schema_tree(schema, &mut at)?;
        let validator = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .build(schema)
            .map_err(|e| {
                if let ValidationErrorKind::Referencing(r) = e.kind() {
                    return match dangling_ref(schema, schema, &mut String::new()) {
                        Some((at, reference)) => SchemaError::Invalid {
                            at: pointer_display(&at),
                            message: format!("$ref {reference:?} points to nothing in this schema"),
                        },
                        None => SchemaError::Invalid {
                            at: "#".to_owned(),
                            message: format!("a $ref cannot be resolved: {r}"),
                        },
                    };
                }
                SchemaError::Invalid {
                    at: pointer_display(e.instance_path().as_str()),
                    message: e.to_string(),
                }
            })?;
        Ok(CompiledSchema {
            validator,
            name: None,
        })
    }

    /// Names the type in messages about missing or disallowed fields.
    pub fn named(mut self, name: impl Into<String>) -> CompiledSchema {
        self.name = Some(name.into());
        self
    }

    pub fn is_valid(&self, data: &Value) -> bool {
        self.validator.is_valid(data)
    }

    /// Checks `data` and reports the first failing field (deterministic: the schema's keyword
    /// order). `anyOf`/`oneOf` failures are reported through their closest branch.
    pub fn validate(&self, data: &Value) -> Result<(), Violation> {
        if self.validator.is_valid(data) {
            return Ok(());
        }
        match self.validator.validate(data) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.violation(&e, data)),
        }
    }

    fn violation(&self, e: &ValidationError<'_>, data: &Value) -> Violation {
        let (e, merged_types) = most_specific(e);
        let path = e.instance_path().as_str();
        let (param, value) = render_path(path, data);
        let by = match &self.name {
            Some(n) => format!(" by {n}"),
            None => String::new(),
        };
        let got = || describe(value);
        let (param, message) = match e.kind() {
            ValidationErrorKind::Required { property } => {
                let prop = property
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| property.to_string());
                let param = push_key(param, &prop);
                let message = format!("{param} is required{by}");
                (param, message)
            }
            ValidationErrorKind::Type { kind } => {
                let mut expected: Vec<JsonType> = match kind {
                    TypeKind::Single(t) => vec![*t],
                    TypeKind::Multiple(set) => set.iter().collect(),
                };
                for t in merged_types {
                    if !expected.contains(&t) {
                        expected.push(t);
                    }
                }
                let message = format!(
                    "{param} must be {}, got {}",
                    expected_types(&expected),
                    kind_of(value)
                );
                (param, message)
            }
            ValidationErrorKind::Enum { options } => {
                let list = match options.as_ref() {
                    Value::Array(a) => a.iter().map(short).collect::<Vec<_>>().join(", "),
                    other => short(other),
                };
                let message = format!("{param} must be one of {list}, got {}", got());
                (param, message)
            }
            ValidationErrorKind::Constant { expected_value } => {
                let message = format!("{param} must be {}, got {}", short(expected_value), got());
                (param, message)
            }
            ValidationErrorKind::AdditionalProperties { unexpected }
            | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                let param = match unexpected.first() {
                    Some(k) => push_key(param, k),
                    None => param,
                };
                let message = format!("{param} is not allowed{by}");
                (param, message)
            }
            ValidationErrorKind::FalseSchema => {
                let message = format!("{param} is not allowed{by}");
                (param, message)
            }
            kind => {
                let message = match kind {
                    ValidationErrorKind::Minimum { limit } => {
                        format!("{param} must be at least {limit}, got {}", got())
                    }
                    ValidationErrorKind::Maximum { limit } => {
                        format!("{param} must be at most {limit}, got {}", got())
                    }
                    ValidationErrorKind::ExclusiveMinimum { limit } => {
                        format!("{param} must be greater than {limit}, got {}", got())
                    }
                    ValidationErrorKind::ExclusiveMaximum { limit } => {
                        format!("{param} must be less than {limit}, got {}", got())
                    }
                    ValidationErrorKind::MultipleOf { multiple_of } => {
                        format!("{param} must be a multiple of {multiple_of}, got {}", got())
                    }
                    ValidationErrorKind::MinLength { limit } => {
                        format!("{param} must be at least {limit} characters long")
                    }
                    ValidationErrorKind::MaxLength { limit } => {
                        format!("{param} must be at most {limit} characters long")
                    }
                    ValidationErrorKind::MinItems { limit } => {
                        format!("{param} must have at least {limit} items")
                    }
                    ValidationErrorKind::MaxItems { limit } => {
                        format!("{param} must have at most {limit} items")
                    }
                    ValidationErrorKind::MinProperties { limit } => {
                        format!("{param} must have at least {limit} fields")
                    }
                    ValidationErrorKind::MaxProperties { limit } => {
                        format!("{param} must have at most {limit} fields")
                    }
                    ValidationErrorKind::Pattern { pattern } => {
                        format!("{param} must match the pattern {pattern}, got {}", got())
                    }
                    ValidationErrorKind::Format { format } => {
                        format!("{param} must be a valid {format}, got {}", got())
                    }
                    ValidationErrorKind::UniqueItems => format!("{param} must not contain duplicate items"),
                    ValidationErrorKind::Contains => {
                        format!("{param} must contain at least one item of the expected shape")
                    }
                    ValidationErrorKind::AdditionalItems { .. }
                    | ValidationErrorKind::UnevaluatedItems { .. } => {
                        format!("{param} has more items than {} allows", self.subject())
                    }
                    ValidationErrorKind::Not { .. } => {
                        format!("{param} must not match the excluded shape")
                    }
                    ValidationErrorKind::OneOfMultipleValid { .. } => {
                        format!(
                            "{param} matches more than one of the shapes {} allows",
                            self.subject()
                        )
                    }
                    ValidationErrorKind::AnyOf { .. } | ValidationErrorKind::OneOfNotValid { .. } => {
                        format!(
                            "{param} does not match any of the shapes {} allows",
                            self.subject()
                        )
                    }
                    ValidationErrorKind::PropertyNames { error } => {
                        format!("{param} has a field name that is not allowed: {error}")
                    }
                    other => format!("{param} is not valid ({}): {e}", other.keyword()),
                };
                (param, message)
            }
        };
        Violation { param, message }
    }

    fn subject(&self) -> &str {
        self.name.as_deref().unwrap_or("the schema")
    }
}

/// Unwraps `anyOf`/`oneOf` failures into the branch that got furthest (its first error has
/// the deepest instance path; ties go to the first branch). When every branch fails on the
/// type of the same value, the types they accept are returned to be merged into one message.
fn most_specific<'a, 'b>(e: &'a ValidationError<'b>) -> (&'a ValidationError<'b>, Vec<JsonType>) {
    let context = match e.kind() {
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => context,
        _ => return (e, Vec::new()),
    };
    let firsts: Vec<&ValidationError<'static>> = context.iter().filter_map(|branch| branch.first()).collect();
    let Some(best) = firsts.iter().copied().reduce(|best, cand| {
        if depth(cand.instance_path().as_str()) > depth(best.instance_path().as_str()) {
            cand
        } else {
            best
        }
    }) else {
        return (e, Vec::new());
    };
    let here = e.instance_path().as_str();
    let all_types_here = firsts.len() == context.len()
        && firsts.iter().all(|f| {
            f.instance_path().as_str() == here && matches!(f.kind(), ValidationErrorKind::Type { .. })
        });
    if all_types_here {
        let mut types = Vec::new();
        for f in &firsts {
            if let ValidationErrorKind::Type { kind } = f.kind() {
                match kind {
                    TypeKind::Single(t) => types.push(*t),
                    TypeKind::Multiple(set) => types.extend(set.iter()),
                }
            }
        }
        return (best, types);
    }
    most_specific(best)
}

fn depth(pointer: &str) -> usize {
    pointer.bytes().filter(|b| *b == b'/').count()
}

/// Renders an instance path (`/sections/sec-101/stock`) as `data.sections.sec-101.stock`,
/// walking `data` so array indexes (`[0]`) are told apart from numeric keys (`.101`).
fn render_path<'v>(pointer: &str, data: &'v Value) -> (String, Option<&'v Value>) {
    let mut out = String::from("data");
    let mut cur = Some(data);
    for raw in pointer.split('/').skip(1) {
        let token = raw.replace("~1", "/").replace("~0", "~");
        match cur {
            Some(Value::Array(items)) => {
                let _ = write!(out, "[{token}]");
                cur = token.parse::<usize>().ok().and_then(|i| items.get(i));
            }
            Some(Value::Object(map)) => {
                out = push_key(out, &token);
                cur = map.get(&token);
            }
            _ => {
                out = push_key(out, &token);
                cur = None;
            }
        }
    }
    (out, cur)
}

fn push_key(mut path: String, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'));
    if plain {
        path.push('.');
        path.push_str(key);
    } else {
        let _ = write!(path, "[{}]", Value::from(key));
    }
    path
}

fn kind_of(v: Option<&Value>) -> &'static str {
    match v {
        None => "nothing",
        Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => "integer",
        Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Array(_)) => "array",
        Some(Value::Object(_)) => "object",
    }
}

/// A value for a message: short scalars verbatim, everything else by its kind.
fn describe(v: Option<&Value>) -> String {
    match v {
        Some(s @ (Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null)) => {
            let text = s.to_string();
            if text.chars().count() <= 40 {
                text
            } else {
                kind_of(v).to_owned()
            }
        }
        _ => kind_of(v).to_owned(),
    }
}

fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() <= 60 {
        text
    } else {
        format!("{}…", text.chars().take(57).collect::<String>())
    }
}

fn expected_types(types: &[JsonType]) -> String {
    let mut types = types.to_vec();
    // `integer` is redundant beside `number`.
    if types.contains(&JsonType::Number) {
        types.retain(|t| *t != JsonType::Integer);
    }
    types.sort();
    // Null last reads best: "a string or null".
    if let Some(i) = types.iter().position(|t| *t == JsonType::Null) {
        let null = types.remove(i);
        types.push(null);
    }
    let names: Vec<&str> = types
        .iter()
        .map(|t| match t {
            JsonType::Null => "null",
            JsonType::Boolean => "a boolean",
            JsonType::Integer => "an integer",
            JsonType::Number => "a number",
            JsonType::String => "a string",
            JsonType::Array => "an array",
            JsonType::Object => "an object",
        })
        .collect();
    match names.as_slice() {
        [] => "something else".to_owned(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// `#/properties/a~1b` from `/properties/a~1b`.
fn pointer_display(pointer: &str) -> String {
    format!("#{pointer}")
}

/// Walks the schema tree (not the `const`/`enum`/`default`/`examples` values, which are data)
/// refusing other dialects and non-local references before the compiler sees them.
fn check_schema_tree(node: &Value, at: &mut String) -> Result<(), SchemaError> {
    let Value::Object(map) = node else {
        return Ok(());
    };
    for (key, value) in map {
        let len = at.len();
        push_pointer(at, key);
        match key.as_str() {
            "const" | "enum" | "default" | "examples" => {}
            "$schema" => {
                if value.as_str().map(|s| s.trim_end_matches('#')) != Some(DIALECT_2020_12) {
                    return Err(SchemaError::Dialect {
                        at: pointer_display(at),
                        found: value.to_string(),
                    });
                }
            }
            "$ref" | "$dynamicRef" => match value.as_str() {
                Some(reference) if !reference.starts_with('#') => {
                    let keyword = if key == "$ref" { "$ref" } else { "$dynamicRef" };
                    return Err(SchemaError::NonLocalRef {
                        keyword,
                        at: pointer_display(at),
                        reference: reference.to_owned(),
                    });
                }
                _ => {}
            },
            // Maps from names to schemas: the names are not keywords.
            "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas" => {
                if let Value::Object(children) = value {
                    for (name, child) in children {
                        let len = at.len();
                        push_pointer(at, name);
                        check_schema_tree(child, at)?;
                        at.truncate(len);
                    }
                }
            }
            _ => match value {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let len = at.len();
                        let _ = write!(at, "/{i}");
                        check_schema_tree(item, at)?;
                        at.truncate(len);
                    }
                }
                other => check_schema_tree(other, at)?,
            },
        }
        at.truncate(len);
    }
    Ok(())
}

/// The first `$ref: "#/…"` whose target is not in `root` (only asked once compiling failed on a
/// reference, to say where).
fn dangling_ref(root: &Value, node: &Value, at: &mut String) -> Option<(String, String)> {
    match node {
        Value::Object(map) => {
            for (key, value) in map {
                let len = at.len();
                push_pointer(at, key);
                if key == "$ref" {
                    if let Some(reference) = value.as_str()
                        && let Some(fragment) = reference.strip_prefix('#')
                        && fragment.starts_with('/')
                        && root.pointer(fragment).is_none()
                    {
                        return Some((at.clone(), reference.to_owned()));
                    }
                } else if !matches!(key.as_str(), "const" | "enum" | "default" | "examples")
                    && let Some(found) = dangling_ref(root, value, at)
                {
                    return Some(found);
                }
                at.truncate(len);
            }
            None
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = at.len();
                let _ = write!(at, "/{i}");
                if let Some(found) = dangling_ref(root, item, at) {
                    return Some(found);
                }
                at.truncate(len);
            }
            None
        }
        _ => None,
    }
}

fn push_pointer(at: &mut String, token: &str) {
    at.push('/');
    at.push_str(&token.replace('~', "~0").replace('/', "~1"));
}
