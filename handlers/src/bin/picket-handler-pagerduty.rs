//! Triggers and resolves PagerDuty alerts through the Events API v2, one incident per
//! entity/check (the dedup key). Flags follow Sensu's `sensu-pagerduty-handler`; see
//! handlers/README.md.

use std::process::ExitCode;

use clap::Parser;
use handlers::http::HttpArgs;
use handlers::pagerduty::{self, Options};

#[derive(Parser)]
#[command(name = "picket-handler-pagerduty", version, about)]
struct Args {
    /// The integration's routing key.
    #[arg(short, long, env = "PAGERDUTY_TOKEN", hide_env_values = true)]
    token: String,
    /// Template of the dedup key (Go template over the event).
    #[arg(short = 'k', long, env = "PAGERDUTY_DEDUP_KEY_TEMPLATE", default_value = pagerduty::DEFAULT_DEDUP_KEY)]
    dedup_key_template: String,
    /// Template of the alert summary.
    #[arg(short = 's', long, env = "PAGERDUTY_SUMMARY_TEMPLATE", default_value = pagerduty::DEFAULT_SUMMARY)]
    summary_template: String,
    /// The Events API v2 endpoint (override for tests or a proxy).
    #[arg(long, env = "PAGERDUTY_URL", default_value = pagerduty::DEFAULT_URL)]
    url: String,
    #[command(flatten)]
    http: HttpArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    handlers::cli::run("picket-handler-pagerduty", || {
        let event = handlers::event::read(std::io::stdin().lock())?;
        let options = Options {
            routing_key: args.token,
            dedup_key_template: args.dedup_key_template,
            summary_template: args.summary_template,
        };
        let body = pagerduty::payload(&event, &options, handlers::datetime::now())?;
        let client = args.http.client()?;
        client.post_json(&args.url, &body)?;
        Ok(format!(
            "{} {}",
            body["event_action"].as_str().unwrap_or_default(),
            body["dedup_key"].as_str().unwrap_or_default()
        ))
    })
}
