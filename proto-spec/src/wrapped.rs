//! The wrapped resource format of `sensuctl create`/`dump` (sensu-compat 1.2):
//! `{"type": "CheckConfig", "api_version": "core/v2", "metadata": {...}, "spec": {...}}`.
//!
//! Files are YAML streams (documents separated by lines starting with `---`) or streams of
//! concatenated JSON objects; [`parse`] tells them apart by the first character. Both go
//! through `serde_json::Value`, as sensuctl turns YAML into JSON before decoding, so a YAML and
//! a JSON file with the same content decode the same way. Errors name the document, its first
//! line, and the path of the offending field (`spec.expressions[0]`).

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::meta::ObjectMeta;
use crate::v2::{
    APIKey, Asset, CheckConfig, ClusterRole, ClusterRoleBinding, Entity, EntityConfig, Event,
    EventFilter, Handler, HookConfig, Mutator, Namespace, Pipeline, Role, RoleBinding, Silenced,
    TessenConfig, User,
};
use crate::validate::ValidationError;

/// `api_version` of a document that does not give one.
pub const DEFAULT_API_VERSION: &str = "core/v2";
pub const API_VERSION_CORE_V2: &str = "core/v2";
pub const API_VERSION_CORE_V3: &str = "core/v3";

/// Namespace sensuctl puts namespaced resources in when a file names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Every resource type the wrapped format carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(clippy::upper_case_acronyms)]
pub enum ResourceKind {
    Namespace,
    ClusterRole,
    ClusterRoleBinding,
    User,
    APIKey,
    TessenConfig,
    Asset,
    CheckConfig,
    Entity,
    Event,
    EventFilter,
    Handler,
    HookConfig,
    Mutator,
    Pipeline,
    Role,
    RoleBinding,
    Silenced,
    EntityConfig,
}

struct KindInfo {
    kind: ResourceKind,
    type_name: &'static str,
    snake_name: &'static str,
    api_version: &'static str,
    plural: &'static str,
    namespaced: bool,
}

const fn info(
    kind: ResourceKind,
    type_name: &'static str,
    snake_name: &'static str,
    api_version: &'static str,
    plural: &'static str,
    namespaced: bool,
) -> KindInfo {
    KindInfo {
        kind,
        type_name,
        snake_name,
        api_version,
        plural,
        namespaced,
    }
}

const KINDS: &[KindInfo] = {
    use ResourceKind as K;
    const V2: &str = API_VERSION_CORE_V2;
    &[
        info(
            K::Namespace,
            "Namespace",
            "namespace",
            V2,
            "namespaces",
            false,
        ),
        info(
            K::ClusterRole,
            "ClusterRole",
            "cluster_role",
            V2,
            "clusterroles",
            false,
        ),
        info(
            K::ClusterRoleBinding,
            "ClusterRoleBinding",
            "cluster_role_binding",
            V2,
            "clusterrolebindings",
            false,
        ),
        info(K::User, "User", "user", V2, "users", false),
        info(K::APIKey, "APIKey", "api_key", V2, "apikeys", false),
        info(
            K::TessenConfig,
            "TessenConfig",
            "tessen_config",
            V2,
            "tessen",
            false,
        ),
        info(K::Asset, "Asset", "asset", V2, "assets", true),
        info(
            K::CheckConfig,
            "CheckConfig",
            "check_config",
            V2,
            "checks",
            true,
        ),
        info(K::Entity, "Entity", "entity", V2, "entities", true),
        info(K::Event, "Event", "event", V2, "events", true),
        info(
            K::EventFilter,
            "EventFilter",
            "event_filter",
            V2,
            "filters",
            true,
        ),
        info(K::Handler, "Handler", "handler", V2, "handlers", true),
        info(
            K::HookConfig,
            "HookConfig",
            "hook_config",
            V2,
            "hooks",
            true,
        ),
        info(K::Mutator, "Mutator", "mutator", V2, "mutators", true),
        info(K::Pipeline, "Pipeline", "pipeline", V2, "pipelines", true),
        info(K::Role, "Role", "role", V2, "roles", true),
        info(
            K::RoleBinding,
            "RoleBinding",
            "role_binding",
            V2,
            "rolebindings",
            true,
        ),
        info(K::Silenced, "Silenced", "silenced", V2, "silenced", true),
        info(
            K::EntityConfig,
            "EntityConfig",
            "entity_config",
            API_VERSION_CORE_V3,
            "entity-configs",
            true,
        ),
    ]
};

impl ResourceKind {
    pub const ALL: [ResourceKind; 19] = {
        let mut all = [ResourceKind::Namespace; 19];
        let mut i = 0;
        while i < KINDS.len() {
            all[i] = KINDS[i].kind;
            i += 1;
        }
        all
    };

    fn info(self) -> &'static KindInfo {
        KINDS
            .iter()
            .find(|k| k.kind == self)
            .expect("every kind has an entry in KINDS")
    }

    /// The `type` written in wrapped documents (`CheckConfig`).
    pub fn type_name(self) -> &'static str {
        self.info().type_name
    }

    /// The snake_case alias accepted on input (`check_config`).
    pub fn snake_name(self) -> &'static str {
        self.info().snake_name
    }

    pub fn api_version(self) -> &'static str {
        self.info().api_version
    }

    /// The collection's path segment in the REST API (`checks`, `rolebindings`).
    pub fn plural(self) -> &'static str {
        self.info().plural
    }

    /// Whether resources of this kind live in a namespace (and must name one).
    pub fn is_namespaced(self) -> bool {
        self.info().namespaced
    }

    /// Whether the type has an `ObjectMeta` of its own; Namespace, User and TessenConfig do
    /// not in core/v2.
    pub fn has_metadata(self) -> bool {
        !matches!(
            self,
            ResourceKind::Namespace | ResourceKind::User | ResourceKind::TessenConfig
        )
    }

    /// The kind named by a document's `api_version` (empty means core/v2) and `type` (the
    /// type name or its snake_case alias).
    pub fn resolve(api_version: &str, type_name: &str) -> Option<ResourceKind> {
        let api_version = if api_version.is_empty() {
            DEFAULT_API_VERSION
        } else {
            api_version
        };
        KINDS
            .iter()
            .find(|k| {
                k.api_version == api_version
                    && (k.type_name == type_name || k.snake_name == type_name)
            })
            .map(|k| k.kind)
    }

    /// Decode an unwrapped resource of this kind (an API body, or a wrapped `spec`). The
    /// error path is relative to the value.
    pub fn decode_spec(self, value: Value) -> Result<Resource, DecodeError> {
        use ResourceKind as K;
        Ok(match self {
            K::Namespace => Resource::Namespace(decode(value)?),
            K::ClusterRole => Resource::ClusterRole(decode(value)?),
            K::ClusterRoleBinding => Resource::ClusterRoleBinding(decode(value)?),
            K::User => Resource::User(decode(value)?),
            K::APIKey => Resource::APIKey(decode(value)?),
            K::TessenConfig => Resource::TessenConfig(decode(value)?),
            K::Asset => Resource::Asset(decode(value)?),
            K::CheckConfig => Resource::CheckConfig(decode(value)?),
            K::Entity => Resource::Entity(decode(value)?),
            K::Event => Resource::Event(decode(value)?),
            K::EventFilter => Resource::EventFilter(decode(value)?),
            K::Handler => Resource::Handler(decode(value)?),
            K::HookConfig => Resource::HookConfig(decode(value)?),
            K::Mutator => Resource::Mutator(decode(value)?),
            K::Pipeline => Resource::Pipeline(decode(value)?),
            K::Role => Resource::Role(decode(value)?),
            K::RoleBinding => Resource::RoleBinding(decode(value)?),
            K::Silenced => Resource::Silenced(decode(value)?),
            K::EntityConfig => Resource::EntityConfig(decode(value)?),
        })
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_name())
    }
}

/// One resource of any wrapped type. Boxed: the variants range from one bool to kilobytes.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::upper_case_acronyms)]
pub enum Resource {
    Namespace(Box<Namespace>),
    ClusterRole(Box<ClusterRole>),
    ClusterRoleBinding(Box<ClusterRoleBinding>),
    User(Box<User>),
    APIKey(Box<APIKey>),
    TessenConfig(Box<TessenConfig>),
    Asset(Box<Asset>),
    CheckConfig(Box<CheckConfig>),
    Entity(Box<Entity>),
    Event(Box<Event>),
    EventFilter(Box<EventFilter>),
    Handler(Box<Handler>),
    HookConfig(Box<HookConfig>),
    Mutator(Box<Mutator>),
    Pipeline(Box<Pipeline>),
    Role(Box<Role>),
    RoleBinding(Box<RoleBinding>),
    Silenced(Box<Silenced>),
    EntityConfig(Box<EntityConfig>),
}

/// Runs `$body` with `$r` bound to the boxed value of whichever variant `$value` is.
macro_rules! each_resource {
    ($value:expr, $r:ident => $body:expr) => {
        match $value {
            Resource::Namespace($r) => $body,
            Resource::ClusterRole($r) => $body,
            Resource::ClusterRoleBinding($r) => $body,
            Resource::User($r) => $body,
            Resource::APIKey($r) => $body,
            Resource::TessenConfig($r) => $body,
            Resource::Asset($r) => $body,
            Resource::CheckConfig($r) => $body,
            Resource::Entity($r) => $body,
            Resource::Event($r) => $body,
            Resource::EventFilter($r) => $body,
            Resource::Handler($r) => $body,
            Resource::HookConfig($r) => $body,
            Resource::Mutator($r) => $body,
            Resource::Pipeline($r) => $body,
            Resource::Role($r) => $body,
            Resource::RoleBinding($r) => $body,
            Resource::Silenced($r) => $body,
            Resource::EntityConfig($r) => $body,
        }
    };
}

macro_rules! from_impls {
    ($($variant:ident),*) => {
        $(
            impl From<$variant> for Resource {
                fn from(r: $variant) -> Self {
                    Resource::$variant(Box::new(r))
                }
            }
        )*
    };
}

from_impls!(
    Namespace,
    ClusterRole,
    ClusterRoleBinding,
    User,
    APIKey,
    TessenConfig,
    Asset,
    CheckConfig,
    Entity,
    Event,
    EventFilter,
    Handler,
    HookConfig,
    Mutator,
    Pipeline,
    Role,
    RoleBinding,
    Silenced,
    EntityConfig
);

impl Resource {
    pub fn kind(&self) -> ResourceKind {
        use ResourceKind as K;
        match self {
            Resource::Namespace(_) => K::Namespace,
            Resource::ClusterRole(_) => K::ClusterRole,
            Resource::ClusterRoleBinding(_) => K::ClusterRoleBinding,
            Resource::User(_) => K::User,
            Resource::APIKey(_) => K::APIKey,
            Resource::TessenConfig(_) => K::TessenConfig,
            Resource::Asset(_) => K::Asset,
            Resource::CheckConfig(_) => K::CheckConfig,
            Resource::Entity(_) => K::Entity,
            Resource::Event(_) => K::Event,
            Resource::EventFilter(_) => K::EventFilter,
            Resource::Handler(_) => K::Handler,
            Resource::HookConfig(_) => K::HookConfig,
            Resource::Mutator(_) => K::Mutator,
            Resource::Pipeline(_) => K::Pipeline,
            Resource::Role(_) => K::Role,
            Resource::RoleBinding(_) => K::RoleBinding,
            Resource::Silenced(_) => K::Silenced,
            Resource::EntityConfig(_) => K::EntityConfig,
        }
    }

    /// The resource's own `metadata`; `None` for Namespace, User and TessenConfig.
    pub fn metadata(&self) -> Option<&ObjectMeta> {
        match self {
            Resource::Namespace(_) | Resource::User(_) | Resource::TessenConfig(_) => None,
            Resource::ClusterRole(r) => Some(&r.metadata),
            Resource::ClusterRoleBinding(r) => Some(&r.metadata),
            Resource::APIKey(r) => Some(&r.metadata),
            Resource::Asset(r) => Some(&r.metadata),
            Resource::CheckConfig(r) => Some(&r.metadata),
            Resource::Entity(r) => Some(&r.metadata),
            Resource::Event(r) => Some(&r.metadata),
            Resource::EventFilter(r) => Some(&r.metadata),
            Resource::Handler(r) => Some(&r.metadata),
            Resource::HookConfig(r) => Some(&r.metadata),
            Resource::Mutator(r) => Some(&r.metadata),
            Resource::Pipeline(r) => Some(&r.metadata),
            Resource::Role(r) => Some(&r.metadata),
            Resource::RoleBinding(r) => Some(&r.metadata),
            Resource::Silenced(r) => Some(&r.metadata),
            Resource::EntityConfig(r) => Some(&r.metadata),
        }
    }

    pub fn metadata_mut(&mut self) -> Option<&mut ObjectMeta> {
        match self {
            Resource::Namespace(_) | Resource::User(_) | Resource::TessenConfig(_) => None,
            Resource::ClusterRole(r) => Some(&mut r.metadata),
            Resource::ClusterRoleBinding(r) => Some(&mut r.metadata),
            Resource::APIKey(r) => Some(&mut r.metadata),
            Resource::Asset(r) => Some(&mut r.metadata),
            Resource::CheckConfig(r) => Some(&mut r.metadata),
            Resource::Entity(r) => Some(&mut r.metadata),
            Resource::Event(r) => Some(&mut r.metadata),
            Resource::EventFilter(r) => Some(&mut r.metadata),
            Resource::Handler(r) => Some(&mut r.metadata),
            Resource::HookConfig(r) => Some(&mut r.metadata),
            Resource::Mutator(r) => Some(&mut r.metadata),
            Resource::Pipeline(r) => Some(&mut r.metadata),
            Resource::Role(r) => Some(&mut r.metadata),
            Resource::RoleBinding(r) => Some(&mut r.metadata),
            Resource::Silenced(r) => Some(&mut r.metadata),
            Resource::EntityConfig(r) => Some(&mut r.metadata),
        }
    }

    /// The name the resource is stored under: `metadata.name`, a Namespace's `name`, a
    /// User's `username`; empty for TessenConfig and Events (which are keyed by entity and
    /// check).
    pub fn name(&self) -> &str {
        match self {
            Resource::Namespace(n) => &n.name,
            Resource::User(u) => &u.username,
            r => r.metadata().map(|m| m.name.as_str()).unwrap_or_default(),
        }
    }

    pub fn namespace(&self) -> &str {
        match self {
            Resource::Event(e) => e.namespace(),
            r => r
                .metadata()
                .map(|m| m.namespace.as_str())
                .unwrap_or_default(),
        }
    }

    /// Put a namespaced resource that names no namespace into `namespace`, as sensuctl does
    /// with its configured namespace. An event's entity is filled in too, since the entity is
    /// what Sensu checks.
    pub fn set_default_namespace(&mut self, namespace: &str) {
        if !self.kind().is_namespaced() {
            return;
        }
        if let Resource::Event(e) = self
            && let Some(entity) = &mut e.entity
            && entity.metadata.namespace.is_empty()
        {
            entity.metadata.namespace = namespace.to_string();
        }
        if let Some(m) = self.metadata_mut()
            && m.namespace.is_empty()
        {
            m.namespace = namespace.to_string();
        }
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        each_resource!(self, r => r.validate())
    }

    /// The unwrapped JSON form, as the REST API reads and writes it.
    pub fn to_json_string(&self) -> String {
        each_resource!(self, r => to_json_string(r))
    }

    /// The unwrapped JSON form as a value. Maps in a `Value` are sorted, so key order is
    /// alphabetical (as Sensu's own wrapped `spec`s are).
    pub fn to_json_value(&self) -> Value {
        // Through text rather than `serde_json::to_value`: `go_float` may write integers wider
        // than 64 bits, which only the text writer accepts.
        serde_json::from_str(&self.to_json_string()).expect("re-reading JSON this crate just wrote")
    }
}

fn to_json_string<T: Serialize>(r: &T) -> String {
    // These plain data types always serialize: no maps with non-string keys, no I/O.
    serde_json::to_string(r).expect("JSON encoding of a resource")
}

/// One document of a wrapped file.
#[derive(Debug, Clone, PartialEq)]
pub struct Wrapped {
    pub resource: Resource,
    /// The outer `metadata` of a type with none of its own (Namespace, User, TessenConfig),
    /// kept so that re-encoding writes back what was read. A type with metadata holds it,
    /// merged with the outer one, in `resource`; this is then unused and left empty.
    pub outer_metadata: ObjectMeta,
}

impl From<Resource> for Wrapped {
    fn from(resource: Resource) -> Self {
        Wrapped {
            resource,
            outer_metadata: ObjectMeta::default(),
        }
    }
}

impl Wrapped {
    pub fn new(resource: impl Into<Resource>) -> Self {
        Wrapped::from(resource.into())
    }

    pub fn kind(&self) -> ResourceKind {
        self.resource.kind()
    }

    pub fn into_resource(self) -> Resource {
        self.resource
    }

    /// The `metadata` written outside `spec`.
    pub fn metadata(&self) -> &ObjectMeta {
        self.resource.metadata().unwrap_or(&self.outer_metadata)
    }

    /// Decode one document. The outer `metadata` overrides the inner name, namespace and
    /// created_by where it sets them, and its labels and annotations are merged over the
    /// inner ones.
    pub fn from_value(value: Value) -> Result<Wrapped, DecodeError> {
        let Value::Object(mut doc) = value else {
            return Err(DecodeError::new(
                "",
                format!(
                    "expected an object with type, api_version, metadata and spec, found {}",
                    value_kind(&value)
                ),
            ));
        };
        let field = |doc: &mut serde_json::Map<String, Value>, key: &str| match doc.remove(key) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(DecodeError::new(
                key,
                format!("expected a string, found {}", value_kind(&other)),
            )),
        };
        let type_name = field(&mut doc, "type")?;
        let api_version = field(&mut doc, "api_version")?;
        if type_name.is_empty() {
            return Err(DecodeError::new("type", "type must be set"));
        }
        let Some(kind) = ResourceKind::resolve(&api_version, &type_name) else {
            let shown = if api_version.is_empty() {
                DEFAULT_API_VERSION
            } else {
                &api_version
            };
            return Err(if KINDS.iter().any(|k| k.api_version == shown) {
                DecodeError::new(
                    "type",
                    format!("unknown resource type {type_name:?} in {shown}"),
                )
            } else {
                DecodeError::new(
                    "api_version",
                    format!(
                        "api_version {shown:?} is not supported (only {API_VERSION_CORE_V2} and {API_VERSION_CORE_V3})"
                    ),
                )
            });
        };
        let outer = decode::<Option<ObjectMeta>>(doc.remove("metadata").unwrap_or(Value::Null))
            .map_err(|e| e.within("metadata"))?
            .unwrap_or_default();
        let spec = match doc.remove("spec") {
            None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
            Some(v) => v,
        };
        let mut resource = kind.decode_spec(spec).map_err(|e| e.within("spec"))?;
        match &mut resource {
            Resource::Namespace(n) if !outer.name.is_empty() => n.name = outer.name.clone(),
            Resource::User(u) if !outer.name.is_empty() => u.username = outer.name.clone(),
            _ => {}
        }
        let outer_metadata = match resource.metadata_mut() {
            Some(inner) => {
                merge_metadata(inner, outer);
                ObjectMeta::default()
            }
            None => outer,
        };
        Ok(Wrapped {
            resource,
            outer_metadata,
        })
    }

    fn out(&self) -> WrappedOut<'_> {
        let mut spec = self.resource.to_json_value();
        if self.kind().has_metadata()
            && let Value::Object(m) = &mut spec
        {
            m.remove("metadata");
        }
        WrappedOut {
            type_: self.kind().type_name(),
            api_version: self.kind().api_version(),
            metadata: self.metadata(),
            spec,
        }
    }

    /// The wrapped form as a value (keys sorted, as in any `Value`).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self.out()).expect("JSON encoding of a wrapped resource")
    }

    /// Compact wrapped JSON, keys in Sensu's order: type, api_version, metadata, spec.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.out()).expect("JSON encoding of a wrapped resource")
    }

    /// Indented wrapped JSON, as `sensuctl dump --format wrapped-json` prints it.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(&self.out()).expect("JSON encoding of a wrapped resource")
    }

    /// One YAML document (without a `---` line).
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(&self.out()).expect("YAML encoding of a wrapped resource")
    }
}

fn merge_metadata(inner: &mut ObjectMeta, outer: ObjectMeta) {
    if !outer.name.is_empty() {
        inner.name = outer.name;
    }
    if !outer.namespace.is_empty() {
        inner.namespace = outer.namespace;
    }
    if !outer.created_by.is_empty() {
        inner.created_by = outer.created_by;
    }
    inner.labels.extend(outer.labels);
    inner.annotations.extend(outer.annotations);
}

#[derive(Serialize)]
struct WrappedOut<'a> {
    #[serde(rename = "type")]
    type_: &'static str,
    api_version: &'static str,
    metadata: &'a ObjectMeta,
    spec: Value,
}

/// A value that does not decode into its type; `path` leads to the offending field
/// (`spec.check_hooks[0]`), empty for the document itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DecodeError {
    pub path: String,
    pub message: String,
}

impl DecodeError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        DecodeError {
            path: path.into(),
            message: message.into(),
        }
    }

    fn within(mut self, prefix: &str) -> Self {
        self.path = if self.path.is_empty() {
            prefix.to_string()
        } else if self.path.starts_with('[') {
            format!("{prefix}{}", self.path)
        } else {
            format!("{prefix}.{}", self.path)
        };
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Decode a value into `T`, keeping the path of the first field that fails.
pub fn decode<T: DeserializeOwned>(value: Value) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        DecodeError::new(
            if path == "." { String::new() } else { path },
            e.into_inner().to_string(),
        )
    })
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A document of a file that does not parse or decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("document {document} (line {line}): {error}")]
pub struct ParseError {
    /// 1-based, counting only documents with content.
    pub document: usize,
    /// 1-based line of the error where the parser knows it, else of the document's start.
    pub line: usize,
    pub error: DecodeError,
}

/// The syntax of a wrapped file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

/// JSON if the first significant character opens an object, YAML otherwise. ([`parse`]
/// still reads a YAML flow mapping that starts with `{`.)
pub fn detect_format(input: &str) -> Format {
    let body = input.trim_start_matches('\u{feff}').trim_start();
    if body.starts_with('{') {
        Format::Json
    } else {
        Format::Yaml
    }
}

/// One document of a file, parsed but not yet decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct RawDocument {
    /// 1-based line where the document's content starts.
    pub line: usize,
    pub value: Value,
}

/// Parse a wrapped file of either syntax.
pub fn parse(input: &str) -> Result<Vec<Wrapped>, ParseError> {
    decode_documents(parse_documents(input)?)
}

/// Parse a stream of concatenated JSON objects (whitespace between them is optional).
pub fn parse_json(input: &str) -> Result<Vec<Wrapped>, ParseError> {
    decode_documents(json_documents(input)?)
}

/// Parse a YAML stream. Documents are split at every line that starts with `---`, as sensuctl
/// splits them, so a bad document is reported by its own index and line.
pub fn parse_yaml(input: &str) -> Result<Vec<Wrapped>, ParseError> {
    decode_documents(yaml_values(input)?)
}

/// The documents of a file of either syntax as plain values, for callers that handle
/// resources this crate does not type (other api_versions) or want the input as written.
pub fn parse_documents(input: &str) -> Result<Vec<RawDocument>, ParseError> {
    match detect_format(input) {
        // A YAML flow mapping (`{type: Namespace, spec: {name: a}}`) also starts with `{`:
        // when the first document is not JSON, YAML gets a chance before the JSON error is
        // reported.
        Format::Json => json_documents(input).or_else(|json_err| {
            if json_err.document == 1 {
                yaml_values(input).map_err(|_| json_err)
            } else {
                Err(json_err)
            }
        }),
        Format::Yaml => yaml_values(input),
    }
}

fn decode_documents(docs: Vec<RawDocument>) -> Result<Vec<Wrapped>, ParseError> {
    docs.into_iter()
        .enumerate()
        .map(|(i, d)| {
            Wrapped::from_value(d.value).map_err(|error| ParseError {
                document: i + 1,
                line: d.line,
                error,
            })
        })
        .collect()
}

fn json_documents(input: &str) -> Result<Vec<RawDocument>, ParseError> {
    let input = input.trim_start_matches('\u{feff}');
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(input).into_iter::<Value>();
    loop {
        let offset = stream.byte_offset();
        let start = offset
            + input[offset..]
                .find(|c: char| !c.is_whitespace())
                .unwrap_or(input.len() - offset);
        let line = line_of(input, start);
        match stream.next() {
            None => return Ok(out),
            Some(Err(e)) => {
                return Err(ParseError {
                    document: out.len() + 1,
                    line: if e.line() > 0 { e.line() } else { line },
                    error: DecodeError::new("", format!("invalid JSON: {}", strip_position(&e))),
                });
            }
            Some(Ok(value)) => out.push(RawDocument { line, value }),
        }
    }
}

fn yaml_values(input: &str) -> Result<Vec<RawDocument>, ParseError> {
    let input = input.trim_start_matches('\u{feff}');
    let mut out = Vec::new();
    for (first_line, content_line, chunk) in yaml_documents(input) {
        let value: Value = serde_norway::from_str(&chunk).map_err(|e| ParseError {
            document: out.len() + 1,
            line: e
                .location()
                .map(|l| first_line + l.line().saturating_sub(1))
                .unwrap_or(content_line),
            error: DecodeError::new("", format!("invalid YAML: {}", strip_yaml_position(&e))),
        })?;
        out.push(RawDocument {
            line: content_line,
            value,
        });
    }
    Ok(out)
}

/// The documents of a YAML stream that have content, each as (line of the chunk's first
/// line, line of its first content line, text).
fn yaml_documents(input: &str) -> Vec<(usize, usize, String)> {
    let mut chunks: Vec<(usize, String)> = vec![(1, String::new())];
    for (i, line) in input.lines().enumerate() {
        let lineno = i + 1;
        match line.strip_prefix("---") {
            // `--- {name: x}` carries content on the marker line itself; blanking the marker
            // keeps the parser's columns right.
            Some(rest) if rest.starts_with([' ', '\t']) => {
                chunks.push((lineno, format!("   {rest}\n")));
            }
            Some(_) => chunks.push((lineno + 1, String::new())),
            None => {
                let chunk = &mut chunks.last_mut().expect("at least one chunk").1;
                chunk.push_str(line);
                chunk.push('\n');
            }
        }
    }
    chunks
        .into_iter()
        .filter_map(|(first, text)| {
            let content = text.lines().position(|l| {
                let t = l.trim();
                !t.is_empty() && !t.starts_with('#') && t != "..."
            })?;
            Some((first, first + content, text))
        })
        .collect()
}

fn line_of(input: &str, offset: usize) -> usize {
    input[..offset.min(input.len())].matches('\n').count() + 1
}

/// serde_json appends " at line L column C" relative to the whole stream; the line is
/// reported separately.
fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn strip_yaml_position(e: &serde_norway::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// A JSON stream of indented wrapped documents, one after the other, as `sensuctl dump
/// --format wrapped-json` writes it.
pub fn to_json(docs: &[Wrapped]) -> String {
    let mut out = String::new();
    for d in docs {
        out.push_str(&d.to_json_pretty());
        out.push('\n');
    }
    out
}

/// A YAML stream, documents separated by `---` lines.
pub fn to_yaml(docs: &[Wrapped]) -> String {
    let mut out = String::new();
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&d.to_yaml());
    }
    out
}
