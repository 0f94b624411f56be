//! What each command does.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use proto_spec::wrapped::{Resource, ResourceKind, Wrapped};
use serde_json::{Value, json};

use crate::Error;
use crate::cli::{
    ApiKeyCmd, AssetCmd, BindingCmd, CheckCmd, Cli, Command, Common, ConfigCmd, Configure,
    EventCmd, FilterCmd, Global, HandlerCmd, HookCmd, ListArgs, MutatorCmd, NamespaceCmd, RoleCmd,
    Shell, SilencedCmd, UserCmd,
};
use crate::client::{Client, query_escape};
use crate::config::{self, Cluster, DEFAULT_API_URL, DEFAULT_TIMEOUT_SECS, Profile, Store};
use crate::output::{self, Format};
use crate::resources::{self, API, Kind};

/// The resolved settings of one run: saved configuration overridden by flags.
struct Ctx {
    store: Store,
    cluster: Cluster,
    profile: Profile,
    global: Global,
}

impl Ctx {
    fn load(global: Global) -> Result<Ctx, Error> {
        let dir = match &global.config_dir {
            Some(d) => d.clone(),
            None => config::default_dir()?,
        };
        let store = Store::new(dir);
        let mut cluster = store.load_cluster()?;
        let profile = store.load_profile()?;
        if let Some(k) = &global.api_key {
            cluster.api_key = k.clone();
        }
        if let Some(ca) = &global.trusted_ca_file {
            // Saved by configure: absolute, so later commands run elsewhere find it.
            let ca = std::path::absolute(ca).map_err(|e| Error::Io(ca.display().to_string(), e))?;
            cluster.trusted_ca_file = ca.display().to_string();
        }
        if global.insecure_skip_tls_verify {
            cluster.insecure_skip_tls_verify = true;
        }
        Ok(Ctx {
            store,
            cluster,
            profile,
            global,
        })
    }

    fn api_url(&self) -> String {
        self.global
            .api_url
            .clone()
            .filter(|u| !u.is_empty())
            .or_else(|| Some(self.cluster.api_url.clone()).filter(|u| !u.is_empty()))
            .unwrap_or_else(|| DEFAULT_API_URL.to_string())
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(
            self.global
                .timeout
                .or(self.cluster.timeout)
                .unwrap_or(DEFAULT_TIMEOUT_SECS),
        )
    }

    fn namespace(&self) -> String {
        self.global
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| Some(self.profile.namespace.clone()).filter(|n| !n.is_empty()))
            .unwrap_or_else(|| proto_spec::wrapped::DEFAULT_NAMESPACE.to_string())
    }

    fn format(&self) -> Result<Format, Error> {
        match self.global.format {
            Some(f) => Ok(f),
            None => Format::parse(&self.profile.format),
        }
    }

    fn client(&self) -> Result<Client, Error> {
        // Refreshed tokens are saved only when they are the saved ones.
        let store = self.global.api_key.is_none().then(|| self.store.clone());
        Client::new(&self.api_url(), self.cluster.clone(), self.timeout(), store)
    }
}

pub fn run(mut cli: Cli) -> Result<(), Error> {
    if let Command::Completion { shell } = cli.command {
        return completion(shell);
    }
    // A create's own --timeout (the resource's, as sensuctl) shares its clap id with the
    // global request timeout, so clap hands the value to both; it is the resource's.
    let resource_timeout = match &cli.command {
        Command::Check(CheckCmd::Create(c)) => c.timeout,
        Command::Handler(HandlerCmd::Create(c)) => c.timeout,
        Command::Mutator(MutatorCmd::Create(c)) => c.timeout,
        Command::Hook(HookCmd::Create(c)) => c.timeout,
        _ => None,
    };
    if resource_timeout.is_some() {
        cli.global.timeout = None;
    }
    let ctx = Ctx::load(cli.global)?;
    let stdout = std::io::stdout();
    let colour = stdout.is_terminal();
    let mut out = stdout.lock();
    let out: &mut dyn Write = &mut out;
    match cli.command {
        Command::Completion { .. } => unreachable!("handled above"),
        Command::Configure(c) => configure(ctx, c, out),
        Command::Config(c) => config_cmd(ctx, c, out),
        Command::Logout => logout(ctx, out),
        Command::Create(f) => create_files(&ctx, &f.files, f.recursive, out),
        Command::Delete(f) => delete_files(&ctx, &f.files, f.recursive, out),
        Command::Edit(e) => {
            let kind = Kind::parse(&e.kind)
                .ok_or_else(|| Error::Usage(format!("unknown resource type {:?}", e.kind)))?;
            edit(&ctx, kind, &e.name, out)
        }
        Command::Dump(d) => dump(&ctx, d, out),
        Command::Check(c) => check_cmd(&ctx, c, out, colour),
        Command::Entity(c) => common(&ctx, kind("entity"), c, out, colour),
        Command::Event(c) => event_cmd(&ctx, c, out, colour),
        Command::Handler(c) => handler_cmd(&ctx, c, out, colour),
        Command::Filter(c) => filter_cmd(&ctx, c, out, colour),
        Command::Mutator(c) => mutator_cmd(&ctx, c, out, colour),
        Command::Hook(c) => hook_cmd(&ctx, c, out, colour),
        Command::Asset(c) => asset_cmd(&ctx, c, out, colour),
        Command::Silenced(c) => silenced_cmd(&ctx, c, out, colour),
        Command::Namespace(c) => namespace_cmd(&ctx, c, out, colour),
        Command::User(c) => user_cmd(&ctx, c, out, colour),
        Command::Role(c) => role_cmd(&ctx, kind("role"), c, out, colour),
        Command::ClusterRole(c) => role_cmd(&ctx, kind("cluster-role"), c, out, colour),
        Command::RoleBinding(c) => binding_cmd(&ctx, kind("role-binding"), c, out, colour),
        Command::ClusterRoleBinding(c) => {
            binding_cmd(&ctx, kind("cluster-role-binding"), c, out, colour)
        }
        Command::ApiKey(c) => api_key_cmd(&ctx, c, out, colour),
        Command::Pipeline(c) => common(&ctx, kind("pipeline"), c, out, colour),
    }
}

fn kind(command: &str) -> Kind {
    Kind::by_command(command).expect("a command of the KINDS table")
}

fn completion(shell: Shell) -> Result<(), Error> {
    use clap::CommandFactory;
    let mut cmd = crate::cli::Cli::command();
    let mut out = std::io::stdout().lock();
    match shell {
        Shell::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "picketctl", &mut out)
        }
        Shell::Zsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "picketctl", &mut out)
        }
    }
    Ok(())
}

// === configuration ===

/// A line from stdin after a prompt on stderr; the default when the answer is empty.
fn prompt(question: &str, default: &str, secret: bool) -> Result<String, Error> {
    let mut err = std::io::stderr();
    let stdin = std::io::stdin();
    // Echo goes off before the prompt appears, so a fast typist's first keys are not shown.
    let saved = if secret && stdin.is_terminal() {
        let saved = rustix::termios::tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut quiet = t.clone();
            quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
            let _ =
                rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet);
        }
        saved
    } else {
        None
    };
    if default.is_empty() {
        write!(err, "? {question}: ")?;
    } else {
        write!(err, "? {question}: ({default}) ")?;
    }
    err.flush()?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(t) = saved {
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &t);
        writeln!(err)?;
    }
    if read.map_err(|e| Error::Io("stdin".into(), e))? == 0 {
        return Err(Error::Input(format!(
            "no answer for {question:?} (stdin closed); use configure -n with flags"
        )));
    }
    let answer = line.trim_end_matches(['\n', '\r']).trim().to_string();
    Ok(if answer.is_empty() {
        default.to_string()
    } else {
        answer
    })
}

fn configure(mut ctx: Ctx, c: Configure, out: &mut dyn Write) -> Result<(), Error> {
    let saved_url = Some(ctx.cluster.api_url.clone()).filter(|u| !u.is_empty());
    let url_flag = c.url.clone().or_else(|| ctx.global.api_url.clone());
    let format_flag = ctx.global.format;
    let ns_flag = ctx.global.namespace.clone();
    let (url, username, password, format, namespace) = if c.non_interactive {
        let username = c
            .username
            .ok_or_else(|| Error::Usage("configure -n needs --username".into()))?;
        let password = c
            .password
            .ok_or_else(|| Error::Usage("configure -n needs --password".into()))?;
        (
            url_flag
                .or(saved_url)
                .unwrap_or_else(|| DEFAULT_API_URL.into()),
            username,
            password,
            format_flag.unwrap_or(Format::parse(&ctx.profile.format)?),
            ns_flag.unwrap_or_else(|| ctx.namespace()),
        )
    } else {
        let url = match url_flag {
            Some(u) => u,
            None => prompt(
                "Picket Backend URL",
                saved_url.as_deref().unwrap_or(DEFAULT_API_URL),
                false,
            )?,
        };
        let username = match c.username {
            Some(u) => u,
            None => prompt("Username", &ctx.profile.username, false)?,
        };
        let password = match c.password {
            Some(p) => p,
            None => prompt("Password", "", true)?,
        };
        let namespace = match ns_flag {
            Some(n) => n,
            None => prompt("Namespace", &ctx.namespace(), false)?,
        };
        let format = match format_flag {
            Some(f) => f,
            None => Format::parse(&prompt(
                "Preferred output format (tabular, json, wrapped-json, yaml)",
                Format::parse(&ctx.profile.format)?.name(),
                false,
            )?)?,
        };
        (url, username, password, format, namespace)
    };
    if username.is_empty() {
        return Err(Error::Usage("a username is required".into()));
    }
    ctx.cluster.api_url = url.trim_end_matches('/').to_string();
    // A login replaces the saved credentials; an API key given as a flag is not saved.
    ctx.cluster.api_key.clear();
    let client = Client::new(
        &ctx.cluster.api_url,
        ctx.cluster.clone(),
        ctx.timeout(),
        None,
    )?;
    let tokens = client.login(&username, &password)?;
    ctx.cluster.access_token = tokens.access_token;
    ctx.cluster.expires_at = tokens.expires_at;
    ctx.cluster.refresh_token = tokens.refresh_token;
    if let Some(t) = ctx.global.timeout {
        ctx.cluster.timeout = Some(t);
    }
    ctx.profile.username = username.clone();
    ctx.profile.format = format.name().to_string();
    ctx.profile.namespace = namespace;
    ctx.store.save_cluster(&ctx.cluster)?;
    ctx.store.save_profile(&ctx.profile)?;
    writeln!(
        out,
        "Logged in to {} as {username}; configuration saved in {}",
        ctx.cluster.api_url,
        ctx.store.dir.display()
    )?;
    Ok(())
}

fn config_cmd(mut ctx: Ctx, c: ConfigCmd, out: &mut dyn Write) -> Result<(), Error> {
    match c {
        ConfigCmd::View => {
            let format = ctx.format()?;
            let view = json!({
                "api-url": ctx.api_url(),
                "namespace": ctx.namespace(),
                "format": format.name(),
                "username": ctx.profile.username,
                "timeout": ctx.timeout().as_secs(),
                "trusted-ca-file": ctx.cluster.trusted_ca_file,
                "insecure-skip-tls-verify": ctx.cluster.insecure_skip_tls_verify,
                "authentication": if !ctx.cluster.api_key.is_empty() { "api-key" }
                    else if ctx.cluster.access_token.is_empty() { "none" } else { "token" },
            });
            match format {
                Format::Tabular => {
                    let obj = view.as_object().expect("an object");
                    let width = obj.keys().map(String::len).max().unwrap_or(0);
                    for (k, v) in obj {
                        let v = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        writeln!(out, "{k:width$}  {v}")?;
                    }
                }
                Format::Yaml => {
                    let text = serde_norway::to_string(&view).expect("YAML encodes");
                    out.write_all(text.as_bytes())?;
                }
                _ => writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&view).expect("JSON encodes")
                )?,
            }
        }
        ConfigCmd::SetFormat { new_format: format } => {
            ctx.profile.format = format.name().to_string();
            ctx.store.save_profile(&ctx.profile)?;
            writeln!(out, "Format set to {}", format.name())?;
        }
        ConfigCmd::SetNamespace {
            new_namespace: namespace,
        } => {
            proto_spec::validate::validate_name("namespace", &namespace)
                .map_err(|e| Error::Usage(format!("namespace {namespace:?}: {e}")))?;
            ctx.profile.namespace = namespace.clone();
            ctx.store.save_profile(&ctx.profile)?;
            writeln!(out, "Namespace set to {namespace}")?;
        }
        ConfigCmd::SetTimeout { seconds } => {
            ctx.cluster.timeout = Some(seconds);
            ctx.store.save_cluster(&ctx.cluster)?;
            writeln!(out, "Timeout set to {seconds}s")?;
        }
    }
    Ok(())
}

fn logout(mut ctx: Ctx, out: &mut dyn Write) -> Result<(), Error> {
    if !ctx.cluster.refresh_token.is_empty() {
        // The tokens are forgotten locally even when the backend cannot be told.
        let revoked = ctx.client().and_then(|mut c| c.logout());
        if let Err(e) = revoked {
            let _ = writeln!(std::io::stderr(), "warning: the backend was not told: {e}");
        }
    }
    ctx.cluster.access_token.clear();
    ctx.cluster.refresh_token.clear();
    ctx.cluster.expires_at = 0;
    ctx.cluster.api_key.clear();
    ctx.store.save_cluster(&ctx.cluster)?;
    writeln!(out, "Logged out")?;
    Ok(())
}

// === generic verbs ===

fn ensure_served(kind: Kind) -> Result<(), Error> {
    if resources::served(kind.kind) {
        Ok(())
    } else {
        Err(resources::not_served(kind.kind))
    }
}

fn list(
    ctx: &Ctx,
    kind: Kind,
    args: &ListArgs,
    out: &mut dyn Write,
    colour: bool,
) -> Result<(), Error> {
    ensure_served(kind)?;
    let ns = ctx.namespace();
    let path = kind.collection((!args.all_namespaces).then_some(ns.as_str()));
    let items = ctx.client()?.list(&path, args.chunk_size)?;
    output::write_list(
        out,
        ctx.format()?,
        kind.kind,
        &items,
        args.all_namespaces,
        colour,
    )
}

fn info(ctx: &Ctx, kind: Kind, name: &str, out: &mut dyn Write, colour: bool) -> Result<(), Error> {
    ensure_served(kind)?;
    let v = ctx.client()?.get_json(&kind.item(&ctx.namespace(), name))?;
    output::write_one(out, ctx.format()?, kind.kind, &v, colour)
}

fn delete(ctx: &Ctx, kind: Kind, name: &str, out: &mut dyn Write) -> Result<(), Error> {
    ensure_served(kind)?;
    ctx.client()?
        .call("DELETE", &kind.item(&ctx.namespace(), name), None)?;
    writeln!(out, "Deleted")?;
    Ok(())
}

fn common(
    ctx: &Ctx,
    kind: Kind,
    c: Common,
    out: &mut dyn Write,
    colour: bool,
) -> Result<(), Error> {
    match c {
        Common::List(a) => list(ctx, kind, &a, out, colour),
        Common::Info { name } => info(ctx, kind, &name, out, colour),
        Common::Delete { name, .. } => delete(ctx, kind, &name, out),
        Common::Update { name } => edit(ctx, kind, &name, out),
    }
}

/// Validate with proto-spec, then PUT the unwrapped resource to its path.
fn put_resource(client: &mut Client, mut resource: Resource, ns: &str) -> Result<(), Error> {
    resource.set_default_namespace(ns);
    resources::prepare(&mut resource);
    resource
        .validate()
        .map_err(|e| Error::Input(format!("{} {:?}: {e}", resource.kind(), resource.name())))?;
    creatable(resource.kind())?;
    let path = resources::put_path(&resource);
    client.call("PUT", &path, Some(&resource.to_json_value()))?;
    Ok(())
}

/// Whether `create -f` can write this type.
fn creatable(kind: ResourceKind) -> Result<(), Error> {
    if !resources::served(kind) {
        return Err(resources::not_served(kind));
    }
    if kind == ResourceKind::APIKey {
        // The API mints keys itself (POST /apikeys); a key cannot be written by name.
        return Err(Error::NotImplemented(
            "API keys cannot be created from files; use picketctl api-key grant".into(),
        ));
    }
    Ok(())
}

fn decode(kind: Kind, v: Value) -> Result<Resource, Error> {
    kind.kind
        .decode_spec(v)
        .map_err(|e| Error::Input(format!("{}: {e}", kind.kind)))
}

fn create_from(ctx: &Ctx, kind: Kind, v: Value, out: &mut dyn Write) -> Result<(), Error> {
    let resource = decode(kind, v)?;
    let ns = ctx.namespace();
    let mut client = ctx.client()?;
    // `create` of an existing name is an error, as sensuctl's is; only `create -f` replaces.
    let mut probe = resource.clone();
    probe.set_default_namespace(&ns);
    let path = resources::put_path(&probe);
    if client.request("GET", &path, None)?.status == 200 {
        return Err(Error::Api {
            status: 409,
            message: format!("{} {:?} already exists", kind.kind, probe.name()),
        });
    }
    put_resource(&mut client, resource, &ns)?;
    writeln!(out, "Created")?;
    Ok(())
}

// === files ===

fn create_files(
    ctx: &Ctx,
    files: &[std::path::PathBuf],
    recursive: bool,
    out: &mut dyn Write,
) -> Result<(), Error> {
    // Every document is read and checked before anything is sent, so a typo in the last
    // file does not leave half a change behind.
    let docs = crate::files::read_inputs(files, recursive)?;
    let ns = ctx.namespace();
    let mut resources = Vec::with_capacity(docs.len());
    for (i, w) in docs.into_iter().enumerate() {
        let mut r = w.into_resource();
        r.set_default_namespace(&ns);
        r.validate().map_err(|e| {
            Error::Input(format!(
                "document {} ({} {:?}): {e}",
                i + 1,
                r.kind(),
                r.name()
            ))
        })?;
        creatable(r.kind()).map_err(|e| Error::Input(format!("document {}: {e}", i + 1)))?;
        resources.push(r);
    }
    let mut client = ctx.client()?;
    for r in resources {
        let (k, name) = (r.kind(), r.name().to_string());
        put_resource(&mut client, r, &ns)
            .map_err(|e| Error::Input(format!("{k} {name:?}: {e}")))?;
    }
    writeln!(out, "Created")?;
    Ok(())
}

fn delete_files(
    ctx: &Ctx,
    files: &[std::path::PathBuf],
    recursive: bool,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let docs = crate::files::read_inputs(files, recursive)?;
    let ns = ctx.namespace();
    let mut client = ctx.client()?;
    for w in docs {
        let mut r = w.into_resource();
        r.set_default_namespace(&ns);
        resources::prepare(&mut r);
        if !resources::served(r.kind()) {
            return Err(resources::not_served(r.kind()));
        }
        let path = resources::put_path(&r);
        let reply = client.request("DELETE", &path, None)?;
        // Deleting what is already gone is what was asked for.
        if reply.status != 404 && !(200..300).contains(&reply.status) {
            client.call("DELETE", &path, None)?;
        }
    }
    writeln!(out, "Deleted")?;
    Ok(())
}

// === edit ===

fn edit(ctx: &Ctx, kind: Kind, name: &str, out: &mut dyn Write) -> Result<(), Error> {
    ensure_served(kind)?;
    let ns = ctx.namespace();
    let mut client = ctx.client()?;
    let v = client.get_json(&kind.item(&ns, name))?;
    let original = output::wrap(kind.kind, &v)?.to_yaml();
    let editor = std::env::var("VISUAL")
        .ok()
        .filter(|e| !e.is_empty())
        .or_else(|| std::env::var("EDITOR").ok().filter(|e| !e.is_empty()))
        .unwrap_or_else(|| "vi".to_string());
    let dir = std::env::temp_dir().join(format!("picketctl-edit-{}", std::process::id()));
    // Private: the resource may carry secrets (env_vars, tokens in commands).
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::Io(dir.display().to_string(), e))?;
    }
    let file = dir.join(format!("{}.yaml", kind.command));
    let result = (|| {
        std::fs::write(&file, &original).map_err(|e| Error::Io(file.display().to_string(), e))?;
        // Through the shell, as git does, so EDITOR may carry arguments ("code --wait").
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("picketctl-editor")
            .arg(&file)
            .status()
            .map_err(|e| Error::Io(editor.clone(), e))?;
        if !status.success() {
            return Err(Error::Input(format!(
                "{editor} exited with {status}; nothing saved"
            )));
        }
        std::fs::read_to_string(&file).map_err(|e| Error::Io(file.display().to_string(), e))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let edited = result?;
    if edited == original {
        writeln!(out, "Unchanged")?;
        return Ok(());
    }
    let docs: Vec<Wrapped> = proto_spec::wrapped::parse(&edited)
        .map_err(|e| Error::Input(format!("the edited resource: {e}; nothing saved")))?;
    let [doc] = <[Wrapped; 1]>::try_from(docs).map_err(|_| {
        Error::Input("the edited file must hold exactly one resource; nothing saved".into())
    })?;
    if doc.kind() != kind.kind {
        return Err(Error::Input(format!(
            "the edited resource is a {}, not a {}; nothing saved",
            doc.kind(),
            kind.kind
        )));
    }
    put_resource(&mut client, doc.into_resource(), &ns)?;
    writeln!(out, "Updated")?;
    Ok(())
}

// === dump ===

fn dump(ctx: &Ctx, d: crate::cli::Dump, out: &mut dyn Write) -> Result<(), Error> {
    let format = match ctx.global.format {
        None | Some(Format::Yaml) | Some(Format::Tabular) => Format::Yaml,
        Some(f) => f,
    };
    if format == Format::Json {
        return Err(Error::Usage(
            "dump writes wrapped-json or yaml (what create -f reads)".into(),
        ));
    }
    let kinds: Vec<Kind> = if d.types == "all" {
        resources::KINDS
            .iter()
            .copied()
            // API keys are credentials the API mints itself: `create -f` could not restore
            // them, so `all` leaves them out (name `api-key` to dump them anyway).
            .filter(|k| resources::served(k.kind) && k.kind != ResourceKind::APIKey)
            .collect()
    } else {
        let mut kinds = Vec::new();
        for t in d.types.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let k = Kind::parse(t)
                .ok_or_else(|| Error::Usage(format!("unknown resource type {t:?}")))?;
            ensure_served(k)?;
            kinds.push(k);
        }
        kinds
    };
    let ns = ctx.namespace();
    let mut client = ctx.client()?;
    let mut wrapped = Vec::new();
    for k in kinds {
        let path = k.collection((!d.all_namespaces).then_some(ns.as_str()));
        // `dump all` of one namespace leaves out the cluster-wide types (namespaces, users,
        // cluster roles): they are not that namespace's. Named explicitly, they are dumped.
        if !d.all_namespaces && !k.kind.is_namespaced() && d.types == "all" {
            continue;
        }
        for v in client.list(&path, d.chunk_size)? {
            wrapped.push(output::wrap(k.kind, &v)?);
        }
    }
    match &d.file {
        Some(path) => {
            let mut buf = Vec::new();
            output::write_wrapped(&mut buf, format, &wrapped)?;
            std::fs::write(path, buf).map_err(|e| Error::Io(path.display().to_string(), e))?;
        }
        None => output::write_wrapped(out, format, &wrapped)?,
    }
    Ok(())
}

// === resource-specific commands ===

fn check_cmd(ctx: &Ctx, c: CheckCmd, out: &mut dyn Write, colour: bool) -> Result<(), Error> {
    let k = kind("check");
    match c {
        CheckCmd::Common(c) => common(ctx, k, c, out, colour),
        CheckCmd::Create(c) => {
            let mut v = json!({
                "metadata": {"name": c.name},
                "command": c.command,
                "subscriptions": c.subscriptions,
                "handlers": c.handlers,
                "publish": c.publish,
                "stdin": c.stdin,
                "round_robin": c.round_robin,
                "runtime_assets": c.runtime_assets,
            });
            if let Some(i) = c.interval {
                v["interval"] = json!(i);
            }
            if let Some(cron) = c.cron {
                v["cron"] = json!(cron);
            }
            if let Some(t) = c.timeout {
                v["timeout"] = json!(t);
            }
            if let Some(t) = c.ttl {
                v["ttl"] = json!(t);
            }
            if let Some(p) = c.proxy_entity_name {
                v["proxy_entity_name"] = json!(p);
            }
            create_from(ctx, k, v, out)
        }
        CheckCmd::Execute {
            name,
            subscriptions,
            reason,
        } => {
            let mut body = json!({ "check": name });
            if !subscriptions.is_empty() {
                body["subscriptions"] = json!(subscriptions);
            }
            if let Some(r) = reason {
                body["reason"] = json!(r);
            }
            let path = format!("{}/execute", k.item(&ctx.namespace(), &name));
            ctx.client()?.call("POST", &path, Some(&body))?;
            writeln!(out, "Issued")?;
            Ok(())
        }
    }
}

fn asset_cmd(ctx: &Ctx, c: AssetCmd, out: &mut dyn Write, colour: bool) -> Result<(), Error> {
    let k = kind("asset");
    match c {
        AssetCmd::Common(c) => common(ctx, k, c, out, colour),
        AssetCmd::Create(c) => {
            let mut headers = serde_json::Map::new();
            for h in &c.headers {
                let (name, value) = h.split_once(':').ok_or_else(|| {
                    Error::Usage(format!("--header {h:?}: expected `Name: value`"))
                })?;
                let name = name.trim();
                if name.is_empty() {
                    return Err(Error::Usage(format!("--header {h:?}: the name is empty")));
                }
                headers.insert(name.to_string(), json!(value.trim()));
            }
            let mut v = json!({
                "metadata": {"name": c.name},
                "url": c.url,
                "sha512": c.sha512,
            });
            if !c.filters.is_empty() {
                v["filters"] = json!(c.filters);
            }
            if !headers.is_empty() {
                v["headers"] = Value::Object(headers);
            }
            create_from(ctx, k, v, out)
        }
    }
}

fn event_cmd(ctx: &Ctx, c: EventCmd, out: &mut dyn Write, colour: bool) -> Result<(), Error> {
    let k = kind("event");
    match c {
        EventCmd::List(a) => list(ctx, k, &a, out, colour),
        EventCmd::Info { entity, check } => info(ctx, k, &format!("{entity}/{check}"), out, colour),
        EventCmd::Delete { entity, check, .. } => delete(ctx, k, &format!("{entity}/{check}"), out),
        EventCmd::Resolve { entity, check } => {
            let path = k.item(&ctx.namespace(), &format!("{entity}/{check}"));
            let mut client = ctx.client()?;
            let mut event = client.get_json(&path)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            let check_obj = event
                .get_mut("check")
                .and_then(Value::as_object_mut)
                .ok_or_else(|| Error::Protocol("the event has no check".into()))?;
            check_obj.insert("status".into(), json!(0));
            check_obj.insert("output".into(), json!("Resolved manually by picketctl"));
            check_obj.insert("executed".into(), json!(now));
            event["timestamp"] = json!(now);
            client.call("PUT", &path, Some(&event))?;
            writeln!(out, "Resolved")?;
            Ok(())
        }
    }
}

fn handler_cmd(ctx: &Ctx, c: HandlerCmd, out: &mut dyn Write, colour: bool) -> Result<(), Error> {
    let k = kind("handler");
    match c {
        HandlerCmd::Common(c) => common(ctx, k, c, out, colour),
        HandlerCmd::Create(c) => {
            let mut v = json!({
                "metadata": {"name": c.name},
                "type": c.type_,
                "filters": c.filters,
                "handlers": c.handlers,
                "runtime_assets": c.runtime_assets,
            });
            if let Some(cmd) = c.command {
                v["command"] = json!(cmd);
            }
            if let Some(t) = c.timeout {
                v["timeout"] = json!(t);
            }
            if let Some(m) = c.mutator {
                v["mutator"] = json!(m);
            }
            if c.socket_host.is_some() || c.socket_port.is_some() {
                v["socket"] = json!({
                    "host": c.socket_host.unwrap_or_default(),
                    "port": c.socket_port.unwrap_or_default(),
                });
            }
            create_from(ctx, k, v, out)
        }
    }
}

fn filter_cmd(ctx: &Ctx, c: FilterCmd, out: &mut dyn Write, colour: bool) -> Result<(), Error> {
    let k = kind("filter");
    match c {
        FilterCmd::Common(c) => common(ctx, k, c, out, colour),
        FilterCmd::Create(c) => {
            // Checked here, not by clap, so the refusal is one line like every other error.
            if c.action != "allow" && c.action != "deny" {
                return Err(Error::Usage(format!(
                    "--action {:?}: use allow or deny",
                    c.action
                )));
            }
            let expressions: Vec<String> = c
                .expressions
                .iter()
                .flat_map(|e| split_expressions(e))
                .collect();
            let v = json!({
                "metadata": {"name": c.name},
                "action": c.action,
                "expressions": expressions,
                "runtime_assets": c.runtime_assets,
            });
            create_from(ctx, k, v, out)
        }
    }
}

/// sensuctl's comma list, split only at commas outside strings and brackets: a JavaScript
/// expression such as `['a', 'b'].indexOf(x) >= 0` stays whole, where sensuctl would cut it.
fn split_expressions(src: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in src.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' | '`' => quote = Some(c),
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    parts.push(std::mem::take(&mut current));
                    continue;
                }
                _ => {}
            },
        }
        current.push(c);
    }
    parts.push(current);
    // Empty pieces stay, so `a,,b` is refused by validation rather than quietly mended.
    parts.into_iter().map(|p| p.trim().to_string()).collect()
}

fn mutator_cmd(ctx: &Ctx, c: MutatorCmd, out: &mut dyn Write, colour: bool) -> Result<(), Error> {
    let k = kind("mutator");
    match c {
        MutatorCmd::Common(c) => common(ctx, k, c, out, colour),
        MutatorCmd::Create(c) => {
            let mut v = json!({
                "metadata": {"name": c.name},
                "timeout": c.timeout.unwrap_or_default(),
                "env_vars": c.env_vars,
                "runtime_assets": c.runtime_assets,
            });
            if let Some(cmd) = c.command {
                v["command"] = json!(cmd);
            }
            if let Some(t) = c.type_ {
                if t != "pipe" && t != "javascript" {
                    return Err(Error::Usage(format!(
                        "--type {t:?}: use pipe or javascript"
                    )));
                }
                v["type"] = json!(t);
            }
            if let Some(e) = c.eval {
                v["eval"] = json!(e);
            }
            create_from(ctx, k, v, out)
        }
    }
}

fn hook_cmd(ctx: &Ctx, c: HookCmd, out: &mut dyn Write, colour: bool) -> Result<(), Error> {
    let k = kind("hook");
    match c {
        HookCmd::Common(c) => common(ctx, k, c, out, colour),
        HookCmd::Create(c) => {
            let v = json!({
                "metadata": {"name": c.name},
                "command": c.command,
                "stdin": c.stdin,
                // sensuctl's default.
                "timeout": c.timeout.unwrap_or(60),
                "runtime_assets": c.runtime_assets,
            });
            create_from(ctx, k, v, out)
        }
    }
}

fn silenced_cmd(ctx: &Ctx, c: SilencedCmd, out: &mut dyn Write, colour: bool) -> Result<(), Error> {
    let k = kind("silenced");
    match c {
        SilencedCmd::Common(c) => common(ctx, k, c, out, colour),
        SilencedCmd::Create {
            subscription,
            check,
            reason,
            expire_on_resolve,
            expire,
        } => {
            let (sub, chk) = (subscription.unwrap_or_default(), check.unwrap_or_default());
            if sub.is_empty() && chk.is_empty() {
                return Err(Error::Usage(
                    "silenced create needs --subscription, --check or both".into(),
                ));
            }
            // Sensu's name: `subscription:check`, `*` standing for the missing half.
            let name = format!(
                "{}:{}",
                if sub.is_empty() { "*" } else { &sub },
                if chk.is_empty() { "*" } else { &chk }
            );
            let v = json!({
                "metadata": {"name": name, "namespace": ctx.namespace()},
                "subscription": sub,
                "check": chk,
                "reason": reason.unwrap_or_default(),
                "expire_on_resolve": expire_on_resolve,
                "expire": expire,
            });
            let resource = decode(k, v.clone())?;
            resource
                .validate()
                .map_err(|e| Error::Input(e.to_string()))?;
            ctx.client()?.call(
                "POST",
                &k.collection(Some(&ctx.namespace())),
                Some(&resource.to_json_value()),
            )?;
            writeln!(out, "Created")?;
            Ok(())
        }
    }
}

fn namespace_cmd(
    ctx: &Ctx,
    c: NamespaceCmd,
    out: &mut dyn Write,
    colour: bool,
) -> Result<(), Error> {
    let k = kind("namespace");
    match c {
        NamespaceCmd::List(a) => list(ctx, k, &a, out, colour),
        NamespaceCmd::Info { name } => info(ctx, k, &name, out, colour),
        NamespaceCmd::Create { name } => create_from(ctx, k, json!({ "name": name }), out),
        NamespaceCmd::Delete { name, .. } => delete(ctx, k, &name, out),
    }
}

fn user_cmd(ctx: &Ctx, c: UserCmd, out: &mut dyn Write, colour: bool) -> Result<(), Error> {
    let k = kind("user");
    let user_path = |name: &str| format!("{API}/users/{}", query_escape(name));
    match c {
        UserCmd::List(a) => list(ctx, k, &a, out, colour),
        UserCmd::Info { name } => info(ctx, k, &name, out, colour),
        UserCmd::Create {
            name,
            password,
            groups,
        } => {
            let body = json!({ "username": name, "password": password, "groups": groups });
            decode(k, body.clone())?
                .validate()
                .map_err(|e| Error::Input(e.to_string()))?;
            ctx.client()?
                .call("POST", &format!("{API}/users"), Some(&body))?;
            writeln!(out, "Created")?;
            Ok(())
        }
        UserCmd::ChangePassword {
            name,
            current_password,
            new_password,
        } => {
            let name = name
                .or_else(|| Some(ctx.profile.username.clone()).filter(|u| !u.is_empty()))
                .ok_or_else(|| Error::Usage("which user? (not logged in)".into()))?;
            let body = json!({ "password": current_password, "new_password": new_password });
            ctx.client()?.call(
                "PUT",
                &format!("{}/password", user_path(&name)),
                Some(&body),
            )?;
            writeln!(out, "Password changed")?;
            Ok(())
        }
        UserCmd::Disable { name, .. } => {
            ctx.client()?.call("DELETE", &user_path(&name), None)?;
            writeln!(out, "Disabled")?;
            Ok(())
        }
        UserCmd::Reinstate { name } => {
            ctx.client()?
                .call("PUT", &format!("{}/reinstate", user_path(&name)), None)?;
            writeln!(out, "Reinstated")?;
            Ok(())
        }
        UserCmd::ResetPassword { name, new_password } => {
            let body = json!({ "password": new_password });
            ctx.client()?.call(
                "PUT",
                &format!("{}/reset_password", user_path(&name)),
                Some(&body),
            )?;
            writeln!(out, "Password reset")?;
            Ok(())
        }
        UserCmd::AddGroup { name, group } => {
            let path = format!("{}/groups/{}", user_path(&name), query_escape(&group));
            ctx.client()?.call("PUT", &path, None)?;
            writeln!(out, "Added")?;
            Ok(())
        }
        UserCmd::RemoveGroup { name, group } => {
            let path = format!("{}/groups/{}", user_path(&name), query_escape(&group));
            ctx.client()?.call("DELETE", &path, None)?;
            writeln!(out, "Removed")?;
            Ok(())
        }
        UserCmd::RemoveGroups { name } => {
            ctx.client()?
                .call("DELETE", &format!("{}/groups", user_path(&name)), None)?;
            writeln!(out, "Removed")?;
            Ok(())
        }
        UserCmd::TestCreds { name, password } => {
            ctx.client()?.test_credentials(&name, &password)?;
            writeln!(out, "Valid")?;
            Ok(())
        }
    }
}

fn role_cmd(
    ctx: &Ctx,
    k: Kind,
    c: RoleCmd,
    out: &mut dyn Write,
    colour: bool,
) -> Result<(), Error> {
    match c {
        RoleCmd::Common(c) => common(ctx, k, c, out, colour),
        RoleCmd::Create {
            name,
            verb,
            resource,
            resource_name,
        } => {
            let mut rule = json!({ "verbs": verb, "resources": resource });
            if !resource_name.is_empty() {
                rule["resource_names"] = json!(resource_name);
            }
            let v = json!({ "metadata": {"name": name}, "rules": [rule] });
            create_from(ctx, k, v, out)
        }
    }
}

fn binding_cmd(
    ctx: &Ctx,
    k: Kind,
    c: BindingCmd,
    out: &mut dyn Write,
    colour: bool,
) -> Result<(), Error> {
    match c {
        BindingCmd::Common(c) => common(ctx, k, c, out, colour),
        BindingCmd::Create {
            name,
            role,
            cluster_role,
            users,
            groups,
        } => {
            let role_ref = match (role, cluster_role) {
                (Some(r), None) if k.kind == ResourceKind::RoleBinding => {
                    json!({"type": "Role", "name": r})
                }
                (None, Some(r)) => json!({"type": "ClusterRole", "name": r}),
                _ => {
                    return Err(Error::Usage(match k.kind {
                        ResourceKind::RoleBinding => "give --role or --cluster-role".into(),
                        _ => "give --cluster-role".into(),
                    }));
                }
            };
            if users.is_empty() && groups.is_empty() {
                return Err(Error::Usage("give at least one --user or --group".into()));
            }
            let subjects: Vec<Value> = users
                .iter()
                .map(|u| json!({"type": "User", "name": u}))
                .chain(groups.iter().map(|g| json!({"type": "Group", "name": g})))
                .collect();
            let v =
                json!({ "metadata": {"name": name}, "role_ref": role_ref, "subjects": subjects });
            create_from(ctx, k, v, out)
        }
    }
}

fn api_key_cmd(ctx: &Ctx, c: ApiKeyCmd, out: &mut dyn Write, colour: bool) -> Result<(), Error> {
    let k = kind("api-key");
    match c {
        ApiKeyCmd::List(a) => list(ctx, k, &a, out, colour),
        ApiKeyCmd::Info { name } => info(ctx, k, &name, out, colour),
        ApiKeyCmd::Revoke { name, .. } => delete(ctx, k, &name, out),
        ApiKeyCmd::Grant { username } => {
            let reply = ctx.client()?.call(
                "POST",
                &format!("{API}/apikeys"),
                Some(&json!({ "username": username })),
            )?;
            let location = reply.location.unwrap_or_default();
            let key = location.rsplit('/').next().unwrap_or_default();
            if key.is_empty() {
                return Err(Error::Protocol(
                    "the API did not say which key it made".into(),
                ));
            }
            writeln!(out, "Created: {location}")?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_expressions;

    #[test]
    fn expressions_split_only_at_top_level_commas() {
        assert_eq!(
            split_expressions("event.check.status != 0, event.entity.name == 'a,b'"),
            ["event.check.status != 0", "event.entity.name == 'a,b'"]
        );
        assert_eq!(
            split_expressions("['a', \"b\\\",\"].indexOf(x) >= 0,f(1, {k: 2})"),
            ["['a', \"b\\\",\"].indexOf(x) >= 0", "f(1, {k: 2})"]
        );
        assert_eq!(split_expressions("a,,b"), ["a", "", "b"]);
    }
}
