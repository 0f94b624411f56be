//! The Slack incoming-webhook message (also understood by Mattermost and Rocket.Chat), laid
//! out as Sensu's `sensu-slack-handler` does: one attachment coloured by status, the rendered
//! description as its text, and Status/Entity/Check fields.

use serde_json::{Value, json};

use crate::Result;
use crate::event;
use crate::template;

/// Sensu's default description: the check output.
pub const DEFAULT_DESCRIPTION: &str = "{{ .Check.Output }}";

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Overrides the webhook's default channel when set.
    pub channel: Option<String>,
    pub username: Option<String>,
    pub icon_url: Option<String>,
    pub description_template: String,
}

/// The JSON body for `event`.
pub fn payload(event: &Value, options: &Options) -> Result<Value> {
    let entity = event::entity_name(event)?;
    let check = event::check_name(event).ok_or(crate::Error::MissingField("check"))?;
    let description = template::render(&options.description_template, event, "description")?;
    let status = event::status(event);
    let (color, status_text) = if event::is_resolution(event) {
        ("good", "Resolved".to_string())
    } else {
        let color = match status {
            0 => "good",
            1 => "warning",
            2 => "danger",
            _ => "#6600CC",
        };
        (color, title_case(event::status_name(status)))
    };
    let fallback = format!("{status_text}: {entity}/{check}: {description}");
    let mut body = json!({
        "text": fallback,
        "attachments": [{
            "fallback": fallback,
            "color": color,
            "title": "Description",
            "text": description,
            "fields": [
                {"title": "Status", "value": status_text, "short": false},
                {"title": "Entity", "value": entity, "short": true},
                {"title": "Check", "value": check, "short": true},
            ],
        }],
    });
    for (key, value) in [
        ("channel", &options.channel),
        ("username", &options.username),
        ("icon_url", &options.icon_url),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            body[key] = Value::from(v);
        }
    }
    Ok(body)
}

fn title_case(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let mut chars = lower.chars();
    match chars.next() {
        Some(c) => c.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_and_status_follow_the_event() {
        let mut event = json!({
            "entity": {"metadata": {"name": "web-1"}},
            "check": {"metadata": {"name": "http"}, "status": 2, "output": "down",
                      "history": [{"status": 0}, {"status": 2}]},
        });
        let options = Options {
            channel: Some("#ops".into()),
            description_template: DEFAULT_DESCRIPTION.into(),
            ..Default::default()
        };
        let body = payload(&event, &options).unwrap();
        assert_eq!(body["channel"], "#ops");
        assert!(body.get("username").is_none());
        let a = &body["attachments"][0];
        assert_eq!(a["color"], "danger");
        assert_eq!(a["text"], "down");
        assert_eq!(a["fields"][0]["value"], "Critical");
        assert_eq!(a["fields"][1]["value"], "web-1");

        event["check"]["status"] = json!(0);
        event["check"]["history"] = json!([{"status": 2}, {"status": 0}]);
        let body = payload(&event, &options).unwrap();
        assert_eq!(body["attachments"][0]["color"], "good");
        assert_eq!(body["attachments"][0]["fields"][0]["value"], "Resolved");
    }
}
