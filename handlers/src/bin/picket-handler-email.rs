//! Sends an event by e-mail over SMTP, with STARTTLS, a subject and a body rendered from Go
//! templates. Sensu's `sensu-email-handler` flag names are accepted as aliases; see
//! handlers/README.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use handlers::smtp::{self, Message, Server, StartTls};

const DEFAULT_SUBJECT: &str =
    "Picket Alert - {{ .Entity.Name }}/{{ .Check.Name }}: {{ .Check.State }}";
const DEFAULT_BODY: &str = "{{ .Check.Output }}\n\nEntity: {{ .Entity.Name }}\nCheck: {{ .Check.Name }}\nStatus: {{ .Check.Status }}\nOccurrences: {{ .Check.Occurrences }}\n";

#[derive(Parser)]
#[command(name = "picket-handler-email", version, about)]
struct Args {
    /// SMTP server host name (also the name its certificate must carry).
    #[arg(short = 's', long, alias = "smtpHost", env = "SMTP_HOST")]
    smtp_host: String,
    /// SMTP server port (587 is submission with STARTTLS).
    #[arg(
        short = 'P',
        long,
        alias = "smtpPort",
        env = "SMTP_PORT",
        default_value_t = 587
    )]
    smtp_port: u16,
    /// User name for AUTH (PLAIN, else LOGIN).
    #[arg(short = 'u', long, alias = "smtpUsername", env = "SMTP_USERNAME")]
    smtp_username: Option<String>,
    /// Password for AUTH.
    #[arg(
        short = 'p',
        long,
        alias = "smtpPassword",
        env = "SMTP_PASSWORD",
        hide_env_values = true,
        requires = "smtp_username"
    )]
    smtp_password: Option<String>,
    /// Recipient (repeatable, or comma-separated).
    #[arg(
        short = 't',
        long = "to",
        alias = "toEmail",
        env = "SMTP_TO",
        value_delimiter = ',',
        required = true
    )]
    to: Vec<String>,
    /// Sender address.
    #[arg(short = 'f', long = "from", alias = "fromEmail", env = "SMTP_FROM")]
    from: String,
    /// Subject template (Go template over the event).
    #[arg(short = 'S', long, alias = "subjectTemplate", env = "SMTP_SUBJECT_TEMPLATE", default_value = DEFAULT_SUBJECT)]
    subject_template: String,
    /// File holding the body template (default: output, entity, check, status, occurrences).
    #[arg(
        short = 'T',
        long,
        alias = "bodyTemplateFile",
        env = "SMTP_BODY_TEMPLATE_FILE"
    )]
    body_template_file: Option<PathBuf>,
    /// Send the body as text/html.
    #[arg(long)]
    html: bool,
    /// STARTTLS: required, opportunistic or never.
    #[arg(long, env = "SMTP_STARTTLS", default_value = "required")]
    starttls: String,
    /// Allow AUTH over a connection without TLS.
    #[arg(long)]
    allow_plaintext_auth: bool,
    /// PEM file of the CA certificates to trust instead of the built-in roots.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Name given in EHLO.
    #[arg(long, default_value = "localhost")]
    helo_name: String,
    /// Seconds for connecting and for each exchange with the server.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    handlers::cli::run("picket-handler-email", || {
        let starttls = StartTls::parse(&args.starttls)?;
        let body_template = match &args.body_template_file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| handlers::Error::Config(format!("reading {}: {e}", path.display())))?,
            None => DEFAULT_BODY.to_string(),
        };
        let event = handlers::event::read(std::io::stdin().lock())?;
        let message = Message {
            from: args.from,
            to: args.to.iter().map(|t| t.trim().to_string()).collect(),
            subject: handlers::template::render(
                &args.subject_template,
                &event,
                "subject template",
            )?,
            body: handlers::template::render(&body_template, &event, "body template")?,
            html: args.html,
        };
        let server = Server {
            host: args.smtp_host,
            port: args.smtp_port,
            starttls,
            tls: handlers::tls::client_config(args.ca_file.as_deref())?,
            timeout: Duration::from_secs(args.timeout),
            helo_name: args.helo_name,
            credentials: args
                .smtp_username
                .map(|u| (u, args.smtp_password.unwrap_or_default())),
            allow_plaintext_auth: args.allow_plaintext_auth,
        };
        let done = smtp::send(&server, &message)?;
        Ok(format!(
            "sent to {} ({}): {}",
            message.to.join(", "),
            if done.tls { "STARTTLS" } else { "no TLS" },
            done.reply
        ))
    })
}
