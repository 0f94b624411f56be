//! Sends an event to any HTTP endpoint: the event JSON as received, or a body rendered from
//! a Go template over the event. See handlers/README.md.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use handlers::http::{HttpArgs, parse_header};

#[derive(Parser)]
#[command(name = "picket-handler-webhook", version, about)]
struct Args {
    /// The endpoint.
    #[arg(short, long, env = "WEBHOOK_URL", hide_env_values = true)]
    url: String,
    /// HTTP method.
    #[arg(short = 'X', long, env = "WEBHOOK_METHOD", default_value = "POST")]
    method: String,
    /// A request header, "Name: value" (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Content-Type of the body.
    #[arg(long, env = "WEBHOOK_CONTENT_TYPE", default_value = "application/json")]
    content_type: String,
    /// Template of the body (Go template over the event); without it the event JSON is sent.
    #[arg(
        short = 't',
        long,
        env = "WEBHOOK_BODY_TEMPLATE",
        conflicts_with = "body_template_file"
    )]
    body_template: Option<String>,
    /// File holding the body template.
    #[arg(long, env = "WEBHOOK_BODY_TEMPLATE_FILE")]
    body_template_file: Option<PathBuf>,
    #[command(flatten)]
    http: HttpArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    handlers::cli::run("picket-handler-webhook", || {
        let mut headers = vec![("Content-Type".to_string(), args.content_type.clone())];
        for raw in &args.headers {
            headers.push(parse_header(raw)?);
        }
        let template = match (&args.body_template, &args.body_template_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(path)) => Some(std::fs::read_to_string(path).map_err(|e| {
                handlers::Error::Config(format!("reading {}: {e}", path.display()))
            })?),
            (None, None) => None,
        };
        let event = handlers::event::read(std::io::stdin().lock())?;
        let body = match template {
            Some(t) => handlers::template::render(&t, &event, "body template")?,
            None => event.to_string(),
        };
        let client = args.http.client()?;
        let reply = client.send(&args.method, &args.url, &headers, body.into_bytes())?;
        Ok(format!("{} {}", args.method, reply.status))
    })
}
