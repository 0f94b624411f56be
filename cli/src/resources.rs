//! The resource types picketctl manages: their command names, REST paths and table columns.

use proto_spec::wrapped::{Resource, ResourceKind};
use serde_json::Value;

use crate::Error;
use crate::client::query_escape;

pub const API: &str = "/api/core/v2";

/// One resource type as the command line sees it.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    /// The subcommand (`check`, `role-binding`).
    pub command: &'static str,
    pub kind: ResourceKind,
}

/// Every type with a subcommand, in the order `dump all` writes them: namespaces and
/// cluster-wide RBAC first, so `create -f` of a dump creates what later documents need.
pub const KINDS: &[Kind] = &[
    k("namespace", ResourceKind::Namespace),
    k("cluster-role", ResourceKind::ClusterRole),
    k("cluster-role-binding", ResourceKind::ClusterRoleBinding),
    k("user", ResourceKind::User),
    k("api-key", ResourceKind::APIKey),
    k("role", ResourceKind::Role),
    k("role-binding", ResourceKind::RoleBinding),
    k("asset", ResourceKind::Asset),
    k("hook", ResourceKind::HookConfig),
    k("filter", ResourceKind::EventFilter),
    k("mutator", ResourceKind::Mutator),
    k("handler", ResourceKind::Handler),
    k("pipeline", ResourceKind::Pipeline),
    k("check", ResourceKind::CheckConfig),
    k("entity", ResourceKind::Entity),
    k("event", ResourceKind::Event),
    k("silenced", ResourceKind::Silenced),
];

const fn k(command: &'static str, kind: ResourceKind) -> Kind {
    Kind { command, kind }
}

/// Types the backend does not serve yet: commands on them say so instead of a bare 404.
pub fn served(kind: ResourceKind) -> bool {
    !matches!(
        kind,
        ResourceKind::TessenConfig | ResourceKind::EntityConfig
    )
}

pub fn not_served(kind: ResourceKind) -> Error {
    Error::NotImplemented(format!("the backend does not serve {kind} resources yet"))
}

impl Kind {
    pub fn by_command(command: &str) -> Option<Kind> {
        KINDS.iter().copied().find(|k| k.command == command)
    }

    pub fn by_kind(kind: ResourceKind) -> Option<Kind> {
        KINDS.iter().copied().find(|k| k.kind == kind)
    }

    /// A type as `dump`/`edit` name it: the command, the REST collection, the type name, its
    /// snake_case alias or `core/v2.TypeName`.
    pub fn parse(name: &str) -> Option<Kind> {
        let bare = name.strip_prefix("core/v2.").unwrap_or(name);
        KINDS.iter().copied().find(|k| {
            k.command == bare
                || k.kind.plural() == bare
                || k.kind.type_name() == bare
                || k.kind.snake_name() == bare
        })
    }

    /// The collection path: of one namespace, or of all (`namespace` = None) for namespaced
    /// types.
    pub fn collection(self, namespace: Option<&str>) -> String {
        let plural = self.kind.plural();
        match namespace {
            Some(ns) if self.kind.is_namespaced() => {
                format!("{API}/namespaces/{}/{plural}", query_escape(ns))
            }
            _ => format!("{API}/{plural}"),
        }
    }

    /// One object's path. Events are named `entity/check`.
    pub fn item(self, namespace: &str, name: &str) -> String {
        let name = if self.kind == ResourceKind::Event {
            match name.split_once('/') {
                Some((e, c)) => format!("{}/{}", query_escape(e), query_escape(c)),
                None => query_escape(name),
            }
        } else {
            query_escape(name)
        };
        format!("{}/{name}", self.collection(Some(namespace)))
    }
}

/// What picketctl changes before sending a resource: a silenced entry takes the name Sensu
/// derives from its subscription and check (`appserver:*`), since the documentation's own
/// examples name them otherwise and the API refuses a PUT whose name differs.
pub fn prepare(resource: &mut Resource) {
    if let Resource::Silenced(s) = resource {
        s.fill_name();
    }
}

/// Where `create -f` PUTs (and `delete -f` deletes) a resource.
pub fn put_path(resource: &Resource) -> String {
    let kind = Kind::by_kind(resource.kind()).expect("every served kind has a command");
    let name = match resource {
        Resource::Event(e) => format!("{}/{}", e.entity_name(), e.check_name()),
        r => r.name().to_string(),
    };
    kind.item(resource.namespace(), &name)
}

/// The name `info`/`delete` use for an item of a list (`entity/check` for events).
pub fn display_name(kind: ResourceKind, v: &Value) -> String {
    match kind {
        ResourceKind::Event => format!(
            "{}/{}",
            s(v, "/entity/metadata/name"),
            s(v, "/check/metadata/name")
        ),
        ResourceKind::Namespace => s(v, "/name"),
        ResourceKind::User => s(v, "/username"),
        _ => s(v, "/metadata/name"),
    }
}

pub fn namespace_of(kind: ResourceKind, v: &Value) -> String {
    match kind {
        ResourceKind::Event => {
            let ns = s(v, "/metadata/namespace");
            if ns.is_empty() {
                s(v, "/entity/metadata/namespace")
            } else {
                ns
            }
        }
        _ => s(v, "/metadata/namespace"),
    }
}

/// A string (or number, or bool) at a JSON pointer; empty when absent.
pub fn s(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// A list of strings at a JSON pointer, joined with commas.
fn list(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(x) => x.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(","),
        _ => String::new(),
    }
}

fn num(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer).and_then(Value::as_f64) {
        Some(n) if n != 0.0 => s(v, pointer),
        _ => String::new(),
    }
}

fn time(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer).and_then(Value::as_i64) {
        Some(t) if t > 0 => format_unix(t),
        _ => String::new(),
    }
}

/// `YYYY-MM-DD HH:MM:SS` UTC, without a date library (civil-from-days, Howard Hinnant's).
pub fn format_unix(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The table of `list --format tabular`: headers and one row per item.
pub fn columns(kind: ResourceKind) -> &'static [&'static str] {
    use ResourceKind as K;
    match kind {
        K::Namespace => &["Name"],
        K::CheckConfig => &[
            "Name",
            "Command",
            "Interval",
            "Cron",
            "Timeout",
            "TTL",
            "Subscriptions",
            "Handlers",
            "Publish?",
        ],
        K::Entity => &["ID", "Class", "OS", "Subscriptions", "Last Seen"],
        K::Event => &[
            "Entity",
            "Check",
            "Output",
            "Status",
            "Silenced",
            "Timestamp",
        ],
        K::Handler => &["Name", "Type", "Timeout", "Filters", "Mutator", "Execute"],
        K::EventFilter => &["Name", "Action", "Expressions"],
        K::Mutator => &["Name", "Type", "Command", "Timeout"],
        K::HookConfig => &["Name", "Command", "Timeout", "Stdin?"],
        K::Silenced => &["Name", "Subscription", "Check", "Expire", "Reason"],
        K::User => &["Username", "Groups", "Enabled"],
        K::Role | K::ClusterRole => &["Name", "Rules"],
        K::RoleBinding | K::ClusterRoleBinding => &["Name", "Role", "Users", "Groups"],
        K::APIKey => &["Name", "Username", "Created At"],
        K::Pipeline => &["Name", "Workflows"],
        K::Asset => &["Name", "URL", "Hash"],
        K::TessenConfig | K::EntityConfig => &["Name"],
    }
}

pub fn row(kind: ResourceKind, v: &Value) -> Vec<String> {
    use ResourceKind as K;
    match kind {
        K::Namespace => vec![s(v, "/name")],
        K::CheckConfig => vec![
            s(v, "/metadata/name"),
            s(v, "/command"),
            num(v, "/interval"),
            s(v, "/cron"),
            num(v, "/timeout"),
            num(v, "/ttl"),
            list(v, "/subscriptions"),
            list(v, "/handlers"),
            s(v, "/publish"),
        ],
        K::Entity => vec![
            s(v, "/metadata/name"),
            s(v, "/entity_class"),
            s(v, "/system/os"),
            list(v, "/subscriptions"),
            time(v, "/last_seen"),
        ],
        K::Event => vec![
            s(v, "/entity/metadata/name"),
            s(v, "/check/metadata/name"),
            first_line(&s(v, "/check/output")),
            s(v, "/check/status"),
            s(v, "/check/is_silenced"),
            time(v, "/timestamp"),
        ],
        K::Handler => {
            let execute = match s(v, "/type").as_str() {
                "tcp" | "udp" => format!("{}:{}", s(v, "/socket/host"), s(v, "/socket/port")),
                "set" => list(v, "/handlers"),
                _ => s(v, "/command"),
            };
            vec![
                s(v, "/metadata/name"),
                s(v, "/type"),
                num(v, "/timeout"),
                list(v, "/filters"),
                s(v, "/mutator"),
                execute,
            ]
        }
        K::EventFilter => vec![
            s(v, "/metadata/name"),
            s(v, "/action"),
            list(v, "/expressions"),
        ],
        K::Mutator => vec![
            s(v, "/metadata/name"),
            s(v, "/type"),
            s(v, "/command"),
            num(v, "/timeout"),
        ],
        K::HookConfig => vec![
            s(v, "/metadata/name"),
            s(v, "/command"),
            num(v, "/timeout"),
            s(v, "/stdin"),
        ],
        K::Silenced => vec![
            s(v, "/metadata/name"),
            s(v, "/subscription"),
            s(v, "/check"),
            time(v, "/expire_at"),
            s(v, "/reason"),
        ],
        K::User => vec![
            s(v, "/username"),
            list(v, "/groups"),
            (!v.pointer("/disabled")
                .and_then(Value::as_bool)
                .unwrap_or(false))
            .to_string(),
        ],
        K::Role | K::ClusterRole => {
            let rules = v
                .pointer("/rules")
                .and_then(Value::as_array)
                .map(|rules| {
                    rules
                        .iter()
                        .map(|r| format!("{}:{}", list(r, "/verbs"), list(r, "/resources")))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            vec![s(v, "/metadata/name"), rules]
        }
        K::RoleBinding | K::ClusterRoleBinding => {
            let subjects = |t: &str| {
                v.pointer("/subjects")
                    .and_then(Value::as_array)
                    .map(|subs| {
                        subs.iter()
                            .filter(|x| s(x, "/type") == t)
                            .map(|x| s(x, "/name"))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default()
            };
            vec![
                s(v, "/metadata/name"),
                format!("{}/{}", s(v, "/role_ref/type"), s(v, "/role_ref/name")),
                subjects("User"),
                subjects("Group"),
            ]
        }
        K::APIKey => vec![
            s(v, "/metadata/name"),
            s(v, "/username"),
            time(v, "/created_at"),
        ],
        K::Pipeline => vec![
            s(v, "/metadata/name"),
            v.pointer("/workflows")
                .and_then(Value::as_array)
                .map(|w| {
                    w.iter()
                        .map(|x| s(x, "/name"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default(),
        ],
        K::Asset => vec![s(v, "/metadata/name"), s(v, "/url"), s(v, "/sha512")],
        K::TessenConfig | K::EntityConfig => vec![s(v, "/metadata/name")],
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}
