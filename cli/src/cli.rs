//! Every command and flag, defined once: help and shell completions come from here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "picketctl",
    version,
    about = "Manage Picket (a Sensu Go compatible backend) through its REST API"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Backend API URL (overrides the configured one)
    #[arg(long, global = true, env = "PICKETCTL_API_URL")]
    pub api_url: Option<String>,
    /// API key: sent as `Authorization: Key ...` instead of the saved tokens
    #[arg(long, global = true, env = "PICKETCTL_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Directory of the `cluster` and `profile` files
    /// [default: $XDG_CONFIG_HOME/picket/picketctl or ~/.config/picket/picketctl]
    #[arg(long, global = true, env = "PICKETCTL_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
    /// Namespace (overrides the configured one; default "default")
    #[arg(long, global = true)]
    pub namespace: Option<String>,
    /// Output format (overrides the configured one)
    #[arg(long, global = true, value_enum)]
    pub format: Option<Format>,
    /// Request timeout in seconds [default: 15]
    #[arg(long, global = true)]
    pub timeout: Option<u64>,
    /// PEM file of the CA(s) that signed the backend's certificate
    #[arg(long, global = true)]
    pub trusted_ca_file: Option<PathBuf>,
    /// Do not verify the backend's TLS certificate (testing only)
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in to a backend and save the URL, tokens, format and namespace
    Configure(Configure),
    /// Show or change the saved configuration
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Forget the saved tokens (and revoke the refresh token on the backend)
    Logout,
    /// Create or replace resources from wrapped YAML/JSON files, directories or stdin (-)
    Create(FileArgs),
    /// Delete the resources named in wrapped YAML/JSON files, directories or stdin (-)
    Delete(FileArgs),
    /// Edit a resource in $EDITOR (wrapped YAML) and save it back
    Edit(Edit),
    /// Write resources as wrapped YAML or JSON that `create -f` reads back
    Dump(Dump),
    /// Print a shell completion script
    Completion {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Checks
    #[command(subcommand)]
    Check(CheckCmd),
    /// Entities
    #[command(subcommand)]
    Entity(Common),
    /// Events
    #[command(subcommand)]
    Event(EventCmd),
    /// Handlers
    #[command(subcommand)]
    Handler(HandlerCmd),
    /// Event filters
    #[command(subcommand)]
    Filter(FilterCmd),
    /// Mutators
    #[command(subcommand)]
    Mutator(MutatorCmd),
    /// Hooks
    #[command(subcommand)]
    Hook(HookCmd),
    /// Assets
    #[command(subcommand)]
    Asset(AssetCmd),
    /// Silencing entries
    #[command(subcommand)]
    Silenced(SilencedCmd),
    /// Namespaces
    #[command(subcommand)]
    Namespace(NamespaceCmd),
    /// Users
    #[command(subcommand)]
    User(UserCmd),
    /// Roles (namespaced)
    #[command(subcommand)]
    Role(RoleCmd),
    /// Role bindings (namespaced)
    #[command(subcommand)]
    RoleBinding(BindingCmd),
    /// Cluster roles
    #[command(subcommand)]
    ClusterRole(RoleCmd),
    /// Cluster role bindings
    #[command(subcommand)]
    ClusterRoleBinding(BindingCmd),
    /// API keys
    #[command(subcommand)]
    ApiKey(ApiKeyCmd),
    /// Pipelines
    #[command(subcommand)]
    Pipeline(Common),
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
}

#[derive(Debug, Args)]
pub struct Configure {
    /// Do not prompt: take everything from flags
    #[arg(short = 'n', long)]
    pub non_interactive: bool,
    /// Backend API URL
    #[arg(long)]
    pub url: Option<String>,
    #[arg(long)]
    pub username: Option<String>,
    #[arg(long, env = "PICKETCTL_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print the active configuration
    View,
    /// Save the default output format
    SetFormat {
        // Not `format`: that id is the global --format flag's.
        #[arg(value_enum, value_name = "FORMAT")]
        new_format: Format,
    },
    /// Save the default namespace
    SetNamespace {
        #[arg(value_name = "NAMESPACE")]
        new_namespace: String,
    },
    /// Save the request timeout (seconds)
    SetTimeout {
        #[arg(value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
        seconds: u64,
    },
}

#[derive(Debug, Args)]
pub struct FileArgs {
    /// File, directory or - (stdin); may be repeated
    #[arg(short = 'f', long = "file", required = true)]
    pub files: Vec<PathBuf>,
    /// Descend into subdirectories
    #[arg(short = 'r', long)]
    pub recursive: bool,
}

#[derive(Debug, Args)]
pub struct Edit {
    /// Resource type (check, handler, core/v2.CheckConfig, ...)
    pub kind: String,
    /// Name (`entity/check` for events)
    pub name: String,
}

#[derive(Debug, Args)]
pub struct Dump {
    /// Comma-separated types (check,handler or core/v2.CheckConfig) or `all`
    pub types: String,
    /// Every namespace, not only the current one
    #[arg(long)]
    pub all_namespaces: bool,
    /// Write to this file instead of stdout
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Page size used while reading
    #[arg(long)]
    pub chunk_size: Option<u32>,
}

#[derive(Debug, Args, Clone)]
pub struct ListArgs {
    /// List the resources of every namespace
    #[arg(long)]
    pub all_namespaces: bool,
    /// Read the list in pages of this size (all pages are followed)
    #[arg(long)]
    pub chunk_size: Option<u32>,
}

/// The verbs every resource has.
#[derive(Debug, Subcommand)]
pub enum Common {
    /// List resources
    List(ListArgs),
    /// Show one resource
    Info { name: String },
    /// Delete one resource
    Delete {
        name: String,
        /// Do not ask for confirmation (picketctl never asks; accepted for sensuctl's scripts)
        #[arg(long)]
        skip_confirm: bool,
    },
    /// Edit one resource in $EDITOR
    Update { name: String },
}

#[derive(Debug, Subcommand)]
pub enum CheckCmd {
    #[command(flatten)]
    Common(Common),
    /// Create a check from flags
    Create(CheckCreate),
    /// Request an immediate execution
    Execute {
        name: String,
        /// Subscriptions to send it to (default: the check's own)
        #[arg(long, value_delimiter = ',')]
        subscriptions: Vec<String>,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct CheckCreate {
    pub name: String,
    #[arg(short = 'c', long)]
    pub command: String,
    #[arg(short = 'i', long)]
    pub interval: Option<u32>,
    #[arg(long)]
    pub cron: Option<String>,
    #[arg(short = 's', long, value_delimiter = ',')]
    pub subscriptions: Vec<String>,
    #[arg(long, value_delimiter = ',')]
    pub handlers: Vec<String>,
    // u64 with the global --timeout's id: clap shares one id between the global flag and this
    // one, and a differing type panics when the value is read.
    #[arg(short = 't', long, value_parser = clap::value_parser!(u64).range(..=u64::from(u32::MAX)))]
    pub timeout: Option<u64>,
    #[arg(long)]
    pub ttl: Option<i64>,
    #[arg(short = 'p', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub publish: bool,
    #[arg(long)]
    pub stdin: bool,
    #[arg(short = 'r', long, value_delimiter = ',')]
    pub runtime_assets: Vec<String>,
    #[arg(long)]
    pub round_robin: bool,
    #[arg(long)]
    pub proxy_entity_name: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AssetCmd {
    #[command(flatten)]
    Common(Common),
    /// Create an asset from flags (one build: --url and --sha512)
    Create(AssetCreate),
}

#[derive(Debug, Args)]
pub struct AssetCreate {
    pub name: String,
    /// URL of the asset's archive
    #[arg(short = 'u', long)]
    pub url: String,
    /// SHA-512 of the archive (128 hex digits)
    #[arg(long)]
    pub sha512: String,
    /// Entity filter (JavaScript) that must hold for an agent to install it; repeat for more.
    /// Not split at commas, unlike sensuctl: a JavaScript expression may hold commas
    #[arg(short = 'f', long = "filter")]
    pub filters: Vec<String>,
    /// HTTP header sent when fetching the archive, `Name: value`; may be repeated
    #[arg(long = "header")]
    pub headers: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum EventCmd {
    /// List events
    List(ListArgs),
    /// Show one event
    Info { entity: String, check: String },
    /// Delete one event
    Delete {
        entity: String,
        check: String,
        #[arg(long)]
        skip_confirm: bool,
    },
    /// Resolve an event (status 0) by hand
    Resolve { entity: String, check: String },
}

#[derive(Debug, Subcommand)]
pub enum HandlerCmd {
    #[command(flatten)]
    Common(Common),
    /// Create a handler from flags
    Create(HandlerCreate),
}

#[derive(Debug, Args)]
pub struct HandlerCreate {
    pub name: String,
    /// pipe, tcp, udp or set
    #[arg(short = 't', long = "type", default_value = "pipe")]
    pub type_: String,
    #[arg(short = 'c', long)]
    pub command: Option<String>,
    // u64: see CheckCreate's timeout.
    #[arg(long, value_parser = clap::value_parser!(u64).range(..=u64::from(u32::MAX)))]
    pub timeout: Option<u64>,
    #[arg(long, value_delimiter = ',')]
    pub filters: Vec<String>,
    #[arg(short = 'm', long)]
    pub mutator: Option<String>,
    /// Members of a `set` handler
    #[arg(long, value_delimiter = ',')]
    pub handlers: Vec<String>,
    #[arg(long)]
    pub socket_host: Option<String>,
    #[arg(long)]
    pub socket_port: Option<u32>,
    #[arg(short = 'r', long, value_delimiter = ',')]
    pub runtime_assets: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum FilterCmd {
    #[command(flatten)]
    Common(Common),
    /// Create an event filter from flags
    Create(FilterCreate),
}

#[derive(Debug, Args)]
pub struct FilterCreate {
    pub name: String,
    /// allow or deny
    #[arg(short = 'a', long)]
    pub action: String,
    /// JavaScript expressions, split at commas outside strings and brackets (sensuctl splits
    /// at every comma); may be repeated
    #[arg(short = 'e', long = "expressions", required = true)]
    pub expressions: Vec<String>,
    #[arg(short = 'r', long, value_delimiter = ',')]
    pub runtime_assets: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum MutatorCmd {
    #[command(flatten)]
    Common(Common),
    /// Create a mutator from flags
    Create(MutatorCreate),
}

#[derive(Debug, Args)]
pub struct MutatorCreate {
    pub name: String,
    /// Command of a pipe mutator
    #[arg(short = 'c', long)]
    pub command: Option<String>,
    /// Seconds before the mutator is stopped
    // u64 with the global --timeout's id: clap shares one id between the global flag and this
    // one, and a differing type panics when the value is read.
    #[arg(short = 't', long, value_parser = clap::value_parser!(u64).range(..=u64::from(u32::MAX)))]
    pub timeout: Option<u64>,
    /// `KEY=value` environment variables
    #[arg(short = 'e', long, value_delimiter = ',')]
    pub env_vars: Vec<String>,
    #[arg(short = 'r', long, value_delimiter = ',')]
    pub runtime_assets: Vec<String>,
    /// pipe (default) or javascript
    #[arg(long = "type")]
    pub type_: Option<String>,
    /// JavaScript of a javascript mutator
    #[arg(long)]
    pub eval: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum HookCmd {
    #[command(flatten)]
    Common(Common),
    /// Create a check hook from flags
    Create(HookCreate),
}

#[derive(Debug, Args)]
pub struct HookCreate {
    pub name: String,
    #[arg(short = 'c', long)]
    pub command: String,
    /// Seconds before the hook is stopped [default: 60]
    // No clap default: it would also become the global request timeout.
    #[arg(short = 't', long, value_parser = clap::value_parser!(u64).range(..=u64::from(u32::MAX)))]
    pub timeout: Option<u64>,
    /// Write the check's event to the hook's stdin
    #[arg(short = 's', long)]
    pub stdin: bool,
    #[arg(short = 'r', long, value_delimiter = ',')]
    pub runtime_assets: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum SilencedCmd {
    #[command(flatten)]
    Common(Common),
    /// Silence a subscription and/or a check
    Create {
        #[arg(short = 's', long)]
        subscription: Option<String>,
        #[arg(short = 'c', long)]
        check: Option<String>,
        #[arg(short = 'r', long)]
        reason: Option<String>,
        /// Clear the entry when the silenced check resolves
        #[arg(short = 'x', long)]
        expire_on_resolve: bool,
        /// Seconds until it expires (-1: never)
        #[arg(short = 'e', long, default_value_t = -1)]
        expire: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum NamespaceCmd {
    /// List namespaces
    List(ListArgs),
    /// Show one namespace
    Info { name: String },
    /// Create a namespace
    Create { name: String },
    /// Delete a namespace (it must be empty)
    Delete {
        name: String,
        #[arg(long)]
        skip_confirm: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// List users
    List(ListArgs),
    /// Show one user
    Info { name: String },
    /// Create a user
    Create {
        name: String,
        #[arg(long, env = "PICKETCTL_NEW_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
    },
    /// Change a user's password (the current one is required)
    ChangePassword {
        /// The user (default: the logged-in one)
        name: Option<String>,
        #[arg(long, env = "PICKETCTL_PASSWORD", hide_env_values = true)]
        current_password: String,
        #[arg(long, env = "PICKETCTL_NEW_PASSWORD", hide_env_values = true)]
        new_password: String,
    },
    /// Disable a user (its tokens stop working)
    Disable {
        name: String,
        #[arg(long)]
        skip_confirm: bool,
    },
    /// Enable a disabled user again
    Reinstate { name: String },
    /// Set a user's password without the current one (administrators)
    ResetPassword {
        name: String,
        #[arg(long, env = "PICKETCTL_NEW_PASSWORD", hide_env_values = true)]
        new_password: String,
    },
    /// Add a user to a group
    AddGroup { name: String, group: String },
    /// Remove a user from a group
    RemoveGroup { name: String, group: String },
    /// Remove a user from every group
    RemoveGroups { name: String },
    /// Check a username and password against the backend (GET /auth/test)
    TestCreds {
        name: String,
        #[arg(long, env = "PICKETCTL_PASSWORD", hide_env_values = true)]
        password: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCmd {
    #[command(flatten)]
    Common(Common),
    /// Create a role with one rule
    Create {
        name: String,
        #[arg(short = 'v', long, value_delimiter = ',', required = true)]
        verb: Vec<String>,
        #[arg(short = 'r', long, value_delimiter = ',', required = true)]
        resource: Vec<String>,
        #[arg(short = 'n', long, value_delimiter = ',')]
        resource_name: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BindingCmd {
    #[command(flatten)]
    Common(Common),
    /// Bind a role (or cluster role) to users and groups
    Create {
        name: String,
        #[arg(short = 'r', long, conflicts_with = "cluster_role")]
        role: Option<String>,
        #[arg(short = 'c', long)]
        cluster_role: Option<String>,
        #[arg(short = 'u', long = "user", value_delimiter = ',')]
        users: Vec<String>,
        #[arg(short = 'g', long = "group", value_delimiter = ',')]
        groups: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCmd {
    /// List API keys
    List(ListArgs),
    /// Show one API key
    Info { name: String },
    /// Create an API key for a user and print it
    Grant { username: String },
    /// Delete an API key
    Revoke {
        name: String,
        #[arg(long)]
        skip_confirm: bool,
    },
}
