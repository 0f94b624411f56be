//! Posts an event to a Slack-compatible incoming webhook. Flags follow Sensu's
//! `sensu-slack-handler`; see handlers/README.md.

use std::process::ExitCode;

use clap::Parser;
use handlers::http::HttpArgs;
use handlers::slack::{self, Options};

#[derive(Parser)]
#[command(name = "picket-handler-slack", version, about)]
struct Args {
    /// The incoming webhook URL.
    #[arg(short, long, env = "SLACK_WEBHOOK_URL", hide_env_values = true)]
    webhook_url: String,
    /// Channel to post to instead of the webhook's own.
    #[arg(short, long, env = "SLACK_CHANNEL")]
    channel: Option<String>,
    /// Name to post as.
    #[arg(short, long, env = "SLACK_USERNAME")]
    username: Option<String>,
    /// Avatar image URL.
    #[arg(short, long, env = "SLACK_ICON_URL")]
    icon_url: Option<String>,
    /// Template of the message text (Go template over the event).
    #[arg(short = 't', long, env = "SLACK_DESCRIPTION_TEMPLATE", default_value = slack::DEFAULT_DESCRIPTION)]
    description_template: String,
    #[command(flatten)]
    http: HttpArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    handlers::cli::run("picket-handler-slack", || {
        let event = handlers::event::read(std::io::stdin().lock())?;
        let options = Options {
            channel: args.channel,
            username: args.username,
            icon_url: args.icon_url,
            description_template: args.description_template,
        };
        let body = slack::payload(&event, &options)?;
        let client = args.http.client()?;
        client.post_json(&args.webhook_url, &body)?;
        Ok(String::new())
    })
}
