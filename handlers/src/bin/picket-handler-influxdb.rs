//! Writes an event's metric points (and, with `-c`, its check status) to InfluxDB over HTTP
//! in line protocol: the v1 API with `--db-name`, the v2 API with `--bucket/--org/--token`.
//! Flags follow Sensu's `sensu-influxdb-handler`; see handlers/README.md.

use std::process::ExitCode;

use clap::Parser;
use handlers::http::{HttpArgs, basic_auth, query_escape};
use handlers::influx::{self, Options, Precision};

#[derive(Parser)]
#[command(name = "picket-handler-influxdb", version, about)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["db_name", "bucket"])))]
struct Args {
    /// Base URL of the InfluxDB server.
    #[arg(
        short,
        long,
        env = "INFLUXDB_ADDR",
        default_value = "http://localhost:8086"
    )]
    addr: String,
    /// v1 API: the database to write to.
    #[arg(short, long, env = "INFLUXDB_DB")]
    db_name: Option<String>,
    /// v1 API: user name (sent with the password as Basic authentication).
    #[arg(short, long, env = "INFLUXDB_USER", requires = "db_name")]
    username: Option<String>,
    /// v1 API: password.
    #[arg(
        short,
        long,
        env = "INFLUXDB_PASS",
        hide_env_values = true,
        requires = "username"
    )]
    password: Option<String>,
    /// v2 API: the bucket to write to.
    #[arg(short, long, env = "INFLUXDB_BUCKET", requires_all = ["org", "token"])]
    bucket: Option<String>,
    /// v2 API: the organisation.
    #[arg(short, long, env = "INFLUXDB_ORG")]
    org: Option<String>,
    /// v2 API: the API token.
    #[arg(short, long, env = "INFLUXDB_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Timestamp precision of the written points: ns, us, ms or s.
    #[arg(long, default_value = "s")]
    precision: String,
    /// Also write the check status as a measurement named after the check.
    #[arg(short, long)]
    check_status_metric: bool,
    /// Strip a leading `<entity name>.` from point names.
    #[arg(long)]
    strip_host: bool,
    #[command(flatten)]
    http: HttpArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    handlers::cli::run("picket-handler-influxdb", || {
        let precision = Precision::parse(&args.precision)?;
        let event = handlers::event::read(std::io::stdin().lock())?;
        let options = Options {
            precision,
            check_status: args.check_status_metric,
            strip_host: args.strip_host,
        };
        let (lines, skipped) = influx::lines(&event, &options, handlers::datetime::now())?;
        if lines.is_empty() {
            return Ok(format!("nothing to write ({skipped} points skipped)"));
        }
        let base = args.addr.trim_end_matches('/');
        let p = precision.as_param();
        let mut headers = vec![(
            "Content-Type".to_string(),
            "text/plain; charset=utf-8".to_string(),
        )];
        let url = match (&args.db_name, &args.bucket) {
            (Some(db), _) => {
                if let Some(user) = &args.username {
                    let password = args.password.as_deref().unwrap_or_default();
                    headers.push(("Authorization".into(), basic_auth(user, password)));
                }
                format!("{base}/write?db={}&precision={p}", query_escape(db))
            }
            (None, Some(bucket)) => {
                let org = args.org.as_deref().unwrap_or_default();
                let token = args.token.as_deref().unwrap_or_default();
                headers.push(("Authorization".into(), format!("Token {token}")));
                format!(
                    "{base}/api/v2/write?org={}&bucket={}&precision={p}",
                    query_escape(org),
                    query_escape(bucket)
                )
            }
            (None, None) => unreachable!("clap requires --db-name or --bucket"),
        };
        let client = args.http.client()?;
        let count = lines.lines().count();
        client.send("POST", &url, &headers, lines.into_bytes())?;
        Ok(format!(
            "wrote {count} lines to {base} ({skipped} points skipped)"
        ))
    })
}
