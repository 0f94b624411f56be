//! The UI's HTML, rendered as strings: every value from the API passes through `esc` (text and
//! attributes) or `enc` (URL path segments and query values).

use std::fmt::Write;

use axum::http::StatusCode;
use serde_json::Value;

use super::{EventFilter, ev_i64, ev_str, status_name};

pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn time(unix: i64) -> String {
    if unix <= 0 {
        return "never".into();
    }
    format!(
        "<time datetime=\"{0}\" data-unix=\"{unix}\">{0}</time>",
        esc(&crate::timefmt::go_time_string_utc(unix))
    )
}

fn badge(status: i64) -> String {
    let name = status_name(status);
    format!("<span class=\"badge s-{name}\">{name}</span>")
}

fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    )
}

fn flash(done: Option<&str>) -> String {
    match done {
        Some(d) => format!("<p class=\"flash\" role=\"status\">Done: {}.</p>", esc(d)),
        None => String::new(),
    }
}

fn strings(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(esc)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

pub struct Page {
    pub title: String,
    pub ns: String,
    /// which navigation entry is current
    pub nav: String,
    pub user: String,
    pub csrf: String,
    pub namespaces: Vec<String>,
    pub body: String,
}

impl Page {
    pub fn render(&self) -> String {
        let ns = enc(&self.ns);
        let mut nav = String::new();
        for (key, label) in [
            ("events", "Events"),
            ("entities", "Entities"),
            ("checks", "Checks"),
            ("silences", "Silences"),
        ] {
            let current = if key == self.nav {
                " aria-current=\"page\""
            } else {
                ""
            };
            let _ = write!(
                nav,
                "<li><a href=\"/ui/ns/{ns}/{key}\"{current}>{label}</a></li>"
            );
        }
        let mut options = String::new();
        let mut names = self.namespaces.clone();
        if !names.contains(&self.ns) {
            names.push(self.ns.clone());
        }
        for n in &names {
            let sel = if *n == self.ns { " selected" } else { "" };
            let _ = write!(options, "<option value=\"{0}\"{sel}>{0}</option>", esc(n));
        }
        format!(
            r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · {ns_text} · Picket</title>
<link rel="stylesheet" href="/ui/app.css"><script src="/ui/app.js" defer></script>
</head><body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
<a class="brand" href="/ui">Picket</a>
<nav aria-label="Main"><ul>{nav}</ul></nav>
<form class="ns" method="get" action="/ui/switch">
<label for="ns-select">Namespace</label>
<select id="ns-select" name="ns" data-autosubmit>{options}</select>
<button type="submit">Go</button>
</form>
<form class="logout" method="post" action="/ui/logout">{csrf}
<span class="user">{user}</span> <button type="submit">Log out</button></form>
</header>
<main id="main" tabindex="-1">
<h1>{title}</h1>
{body}
</main>
</body></html>"##,
            title = esc(&self.title),
            ns_text = esc(&self.ns),
            csrf = csrf_field(&self.csrf),
            user = esc(&self.user),
            body = self.body,
        )
    }
}

pub fn login_page(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · Picket</title><link rel="stylesheet" href="/ui/app.css">
</head><body>
<main id="main" class="login">
<h1>Picket</h1>
{error}
<form method="post" action="/ui/login">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Log in</button>
</form>
</main>
</body></html>"#
    )
}

pub fn error_page(status: StatusCode, message: &str, logged_in: bool) -> String {
    let back = if logged_in {
        "<p><a href=\"/ui\">Back to the dashboard</a></p>"
    } else {
        "<p><a href=\"/ui/login\">Log in</a></p>"
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{code} · Picket</title><link rel="stylesheet" href="/ui/app.css">
</head><body><main id="main" class="login">
<h1>{code} {reason}</h1>
<p class="error" role="alert">{message}</p>
{back}
</main></body></html>"#,
        code = status.as_u16(),
        reason = esc(status.canonical_reason().unwrap_or("Error")),
        message = esc(message),
    )
}

fn event_link(ns: &str, ev: &Value) -> String {
    format!(
        "/ui/ns/{}/events/{}/{}",
        enc(ns),
        enc(ev_str(ev, "/entity/metadata/name")),
        enc(ev_str(ev, "/check/metadata/name"))
    )
}

fn silenced_mark(ev: &Value) -> &'static str {
    if ev
        .pointer("/check/is_silenced")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        " <span class=\"muted\" title=\"silenced\">(silenced)</span>"
    } else {
        ""
    }
}

/// The events table's rows (also the live update's payload).
pub fn event_rows(ns: &str, events: &[Value]) -> String {
    if events.is_empty() {
        return "<tr><td colspan=\"5\">No events match.</td></tr>".into();
    }
    let mut out = String::new();
    for ev in events {
        let status = ev_i64(ev, "/check/status");
        let entity = ev_str(ev, "/entity/metadata/name");
        let check = ev_str(ev, "/check/metadata/name");
        let output = ev_str(ev, "/check/output");
        let first_line: String = output
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(160)
            .collect();
        let _ = write!(
            out,
            "<tr class=\"row s-{name}\" data-entity=\"{e}\" data-check=\"{c}\">\
<td>{badge}{sil}</td>\
<td><a href=\"/ui/ns/{nse}/entities/{ee}\">{e}</a></td>\
<td><a href=\"{link}\">{c}</a></td>\
<td class=\"out\">{out}</td><td>{time}</td></tr>",
            name = status_name(status),
            badge = badge(status),
            sil = silenced_mark(ev),
            e = esc(entity),
            c = esc(check),
            nse = enc(ns),
            ee = enc(entity),
            link = event_link(ns, ev),
            out = esc(&first_line),
            time = time(ev_i64(ev, "/timestamp")),
        );
    }
    out
}

pub fn events_body(f: &EventFilter, count: &str, rows: &str) -> String {
    let mut status_opts = String::from("<option value=\"\">any</option>");
    for s in ["critical", "warning", "unknown", "ok"] {
        let sel = if f.status == s { " selected" } else { "" };
        let _ = write!(status_opts, "<option value=\"{s}\"{sel}>{s}</option>");
    }
    format!(
        r#"<form class="filters" method="get" role="search" aria-label="Filter events">
<label>Status <select name="status">{status_opts}</select></label>
<label>Entity <input name="entity" value="{entity}"></label>
<label>Check <input name="check" value="{check}"></label>
<label>Text <input name="q" type="search" value="{q}"></label>
<button type="submit">Filter</button>
</form>
<p class="muted" aria-live="polite"><span id="event-count" data-live>{count}</span>{note}</p>
<div class="scroll"><table class="events">
<thead><tr><th scope="col">Status</th><th scope="col">Entity</th><th scope="col">Check</th><th scope="col">Output</th><th scope="col">Last seen</th></tr></thead>
<tbody id="event-rows" data-live>{rows}</tbody></table></div>"#,
        entity = esc(&f.entity),
        check = esc(&f.check),
        q = esc(&f.q),
        note = LIVE_NOTE,
    )
}

/// "1 event", "2 events": a live region of the lists.
pub fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Shown by app.js once it keeps the page current; without JavaScript the page is static.
const LIVE_NOTE: &str = "<span data-live-note hidden> · updated live</span>";

/// The event page's summary (status, occurrences, silences): a live region.
pub fn event_summary(ns: &str, ev: &Value) -> String {
    let status = ev_i64(ev, "/check/status");
    let entity = ev_str(ev, "/entity/metadata/name");
    let silenced = strings(ev.pointer("/check/silenced").unwrap_or(&Value::Null));
    let silenced = if silenced.is_empty() {
        "none".to_string()
    } else {
        silenced
    };
    format!(
        r#"<dt>Status</dt><dd>{badge} (exit code {status})</dd>
<dt>Entity</dt><dd><a href="/ui/ns/{nse}/entities/{ee}">{e}</a></dd>
<dt>Check</dt><dd>{c}</dd>
<dt>Occurrences</dt><dd><span class="occurrences">{occ}</span> (watermark {wm})</dd>
<dt>Last seen</dt><dd>{time}</dd>
<dt>Silenced by</dt><dd>{silenced}</dd>"#,
        badge = badge(status),
        nse = enc(ns),
        ee = enc(entity),
        e = esc(entity),
        c = esc(ev_str(ev, "/check/metadata/name")),
        occ = ev_i64(ev, "/check/occurrences"),
        wm = ev_i64(ev, "/check/occurrences_watermark"),
        time = time(ev_i64(ev, "/timestamp")),
    )
}

/// The event's history as a strip of statuses, oldest first: a live region.
pub fn event_history(ev: &Value) -> String {
    let mut strip = String::new();
    if let Some(history) = ev.pointer("/check/history").and_then(Value::as_array) {
        for h in history {
            let s = h["status"].as_i64().unwrap_or_default();
            let executed = h["executed"].as_i64().unwrap_or_default();
            let label = format!(
                "{} at {}",
                status_name(s),
                crate::timefmt::go_time_string_utc(executed)
            );
            let _ = write!(
                strip,
                "<li class=\"s-{}\" title=\"{l}\"><span class=\"sr\">{l}</span></li>",
                status_name(s),
                l = esc(&label)
            );
        }
    }
    strip
}

pub fn event_output(ev: &Value) -> String {
    esc(ev_str(ev, "/check/output"))
}

pub struct EventParts<'a> {
    pub summary: &'a str,
    pub history: &'a str,
    pub output: &'a str,
}

pub fn event_body(
    ns: &str,
    ev: &Value,
    parts: EventParts<'_>,
    csrf: &str,
    done: Option<&str>,
) -> String {
    format!(
        r#"{flash}
<section aria-labelledby="summary-h"><h2 id="summary-h">Summary</h2>
<dl class="facts" id="event-summary" data-live>{summary}</dl></section>
<section aria-labelledby="history-h"><h2 id="history-h">History</h2>
<ol class="strip" id="event-history" data-live>{history}</ol></section>
<section aria-labelledby="output-h"><h2 id="output-h">Output</h2>
<pre class="output" id="event-output" data-live>{output}</pre></section>
<section aria-labelledby="actions-h"><h2 id="actions-h">Actions</h2>
<div class="actions">
<form method="post" action="{base}/resolve">{csrf}<button type="submit">Resolve</button></form>
<form method="post" action="{base}/rerun">{csrf}<button type="submit">Re-run</button></form>
<form method="post" action="{base}/silence" class="silence">{csrf}
<label for="reason">Reason</label> <input id="reason" name="reason">
<label><input type="checkbox" name="expire_on_resolve" value="1"> until resolved</label>
<button type="submit">Silence</button></form>
</div></section>"#,
        flash = flash(done),
        summary = parts.summary,
        history = parts.history,
        output = parts.output,
        base = event_link(ns, ev),
        csrf = csrf_field(csrf),
    )
}

/// The entities table's rows; the keepalive state comes from each entity's keepalive event.
pub fn entity_rows(ns: &str, entities: &[Value], events: &[Value]) -> String {
    let mut rows = String::new();
    for en in entities {
        let name = ev_str(en, "/metadata/name");
        let keepalive = events.iter().find(|ev| {
            ev_str(ev, "/entity/metadata/name") == name
                && ev_str(ev, "/check/metadata/name") == "keepalive"
        });
        let state = match keepalive {
            Some(ev) => badge(ev_i64(ev, "/check/status")),
            None => "<span class=\"muted\">none</span>".into(),
        };
        let _ = write!(
            rows,
            "<tr data-entity=\"{e}\"><td><a href=\"/ui/ns/{}/entities/{}\">{e}</a></td><td>{}</td><td>{}</td><td class=\"seen\">{}</td><td class=\"keepalive\">{}</td></tr>",
            enc(ns),
            enc(name),
            esc(ev_str(en, "/entity_class")),
            strings(en.get("subscriptions").unwrap_or(&Value::Null)),
            time(ev_i64(en, "/last_seen")),
            state,
            e = esc(name),
        );
    }
    if rows.is_empty() {
        rows = "<tr><td colspan=\"5\">No entities.</td></tr>".into();
    }
    rows
}

pub fn entities_body(count: &str, rows: &str) -> String {
    format!(
        r#"<p class="muted" aria-live="polite"><span id="entity-count" data-live>{count}</span>{note}</p>
<div class="scroll"><table class="entities">
<thead><tr><th scope="col">Name</th><th scope="col">Class</th><th scope="col">Subscriptions</th><th scope="col">Last seen</th><th scope="col">Keepalive</th></tr></thead>
<tbody id="entity-rows" data-live>{rows}</tbody></table></div>"#,
        note = LIVE_NOTE,
    )
}

/// An entity's system facts and last seen: a live region.
pub fn entity_facts(en: &Value) -> String {
    let mut facts = String::new();
    for (label, ptr) in [
        ("Class", "/entity_class"),
        ("Hostname", "/system/hostname"),
        ("OS", "/system/os"),
        ("Platform", "/system/platform"),
        ("Platform version", "/system/platform_version"),
        ("Architecture", "/system/arch"),
        ("Agent version", "/system/agent_version"),
        ("User", "/user"),
    ] {
        let v = ev_str(en, ptr);
        if !v.is_empty() {
            let _ = write!(facts, "<dt>{label}</dt><dd>{}</dd>", esc(v));
        }
    }
    let _ = write!(
        facts,
        "<dt>Subscriptions</dt><dd>{}</dd><dt>Last seen</dt><dd>{}</dd>",
        strings(en.get("subscriptions").unwrap_or(&Value::Null)),
        time(ev_i64(en, "/last_seen"))
    );
    if let Some(ifaces) = en
        .pointer("/system/network/interfaces")
        .and_then(Value::as_array)
    {
        for i in ifaces {
            let _ = write!(
                facts,
                "<dt>Interface {}</dt><dd>{}</dd>",
                esc(i["name"].as_str().unwrap_or_default()),
                strings(&i["addresses"])
            );
        }
    }
    facts
}

pub fn entity_body(facts: &str, rows: &str) -> String {
    format!(
        r#"<section aria-labelledby="facts-h"><h2 id="facts-h">System</h2><dl class="facts" id="entity-facts" data-live>{facts}</dl></section>
<section aria-labelledby="ev-h"><h2 id="ev-h">Events</h2>
<div class="scroll"><table class="events">
<thead><tr><th scope="col">Status</th><th scope="col">Entity</th><th scope="col">Check</th><th scope="col">Output</th><th scope="col">Last seen</th></tr></thead>
<tbody id="entity-events" data-live>{rows}</tbody></table></div></section>"#
    )
}

fn schedule(c: &Value) -> String {
    let cron = ev_str(c, "/cron");
    if !cron.is_empty() {
        return format!("cron {}", esc(cron));
    }
    format!("every {}s", ev_i64(c, "/interval"))
}

fn yes_no(v: &Value) -> &'static str {
    if v.as_bool().unwrap_or(false) {
        "yes"
    } else {
        "no"
    }
}

pub fn check_rows(ns: &str, checks: &[Value]) -> String {
    let mut rows = String::new();
    for c in checks {
        let name = ev_str(c, "/metadata/name");
        let _ = write!(
            rows,
            "<tr data-check=\"{n}\"><td><a href=\"/ui/ns/{}/checks/{}\">{n}</a></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            enc(ns),
            enc(name),
            esc(ev_str(c, "/command")),
            schedule(c),
            strings(c.get("subscriptions").unwrap_or(&Value::Null)),
            yes_no(&c["publish"]),
            n = esc(name),
        );
    }
    if rows.is_empty() {
        rows = "<tr><td colspan=\"5\">No checks.</td></tr>".into();
    }
    rows
}

pub fn checks_body(rows: &str) -> String {
    format!(
        r#"<div class="scroll"><table class="checks">
<thead><tr><th scope="col">Name</th><th scope="col">Command</th><th scope="col">Schedule</th><th scope="col">Subscriptions</th><th scope="col">Published</th></tr></thead>
<tbody id="check-rows" data-live>{rows}</tbody></table></div>"#
    )
}

/// A check's definition: a live region.
pub fn check_facts(c: &Value) -> String {
    format!(
        r#"<dt>Command</dt><dd><code>{cmd}</code></dd>
<dt>Schedule</dt><dd>{sched}</dd>
<dt>Subscriptions</dt><dd>{subs}</dd>
<dt>Handlers</dt><dd>{handlers}</dd>
<dt>Timeout</dt><dd>{timeout}s</dd>
<dt>Published</dt><dd>{publish}</dd>"#,
        cmd = esc(ev_str(c, "/command")),
        sched = schedule(c),
        subs = strings(c.get("subscriptions").unwrap_or(&Value::Null)),
        handlers = strings(c.get("handlers").unwrap_or(&Value::Null)),
        timeout = ev_i64(c, "/timeout"),
        publish = yes_no(&c["publish"]),
    )
}

pub fn check_body(ns: &str, name: &str, facts: &str, csrf: &str, done: Option<&str>) -> String {
    format!(
        r#"{flash}<dl class="facts" id="check-facts" data-live>{facts}</dl>
<form method="post" action="/ui/ns/{nse}/checks/{ne}/execute">{csrf}<button type="submit">Execute now</button></form>"#,
        flash = flash(done),
        nse = enc(ns),
        ne = enc(name),
        csrf = csrf_field(csrf),
    )
}

pub fn silence_rows(ns: &str, items: &[Value], csrf: &str) -> String {
    let mut rows = String::new();
    for s in items {
        let name = ev_str(s, "/metadata/name");
        let expire = ev_i64(s, "/expire");
        let _ = write!(
            rows,
            "<tr><td>{n}</td><td>{sub}</td><td>{chk}</td><td>{reason}</td><td>{exp}</td><td>{by}</td>\
<td><form method=\"post\" action=\"/ui/ns/{nse}/silences/{ne}/delete\">{csrf}\
<button type=\"submit\" aria-label=\"Delete silence {n}\">Delete</button></form></td></tr>",
            n = esc(name),
            sub = esc(ev_str(s, "/subscription")),
            chk = esc(ev_str(s, "/check")),
            reason = esc(ev_str(s, "/reason")),
            exp = if expire > 0 {
                format!("{expire}s")
            } else if s["expire_on_resolve"].as_bool().unwrap_or(false) {
                "on resolve".into()
            } else {
                "never".into()
            },
            by = esc(ev_str(s, "/creator")),
            nse = enc(ns),
            ne = enc(name),
            csrf = csrf_field(csrf),
        );
    }
    if rows.is_empty() {
        rows = "<tr><td colspan=\"7\">No silences.</td></tr>".into();
    }
    rows
}

pub fn silences_body(ns: &str, rows: &str, csrf: &str, done: Option<&str>) -> String {
    format!(
        r#"{flash}<div class="scroll"><table class="silences">
<thead><tr><th scope="col">Name</th><th scope="col">Subscription</th><th scope="col">Check</th><th scope="col">Reason</th><th scope="col">Expires</th><th scope="col">Creator</th><th scope="col"><span class="sr">Actions</span></th></tr></thead>
<tbody id="silence-rows" data-live>{rows}</tbody></table></div>
<section aria-labelledby="new-h"><h2 id="new-h">New silence</h2>
<form method="post" action="/ui/ns/{nse}/silences" class="stack">{csrf}
<label for="s-sub">Subscription (e.g. entity:web1)</label><input id="s-sub" name="subscription">
<label for="s-check">Check</label><input id="s-check" name="check">
<label for="s-reason">Reason</label><input id="s-reason" name="reason">
<label for="s-exp">Expire after (seconds, empty for never)</label><input id="s-exp" name="expire" inputmode="numeric">
<label><input type="checkbox" name="expire_on_resolve" value="1"> Expire when resolved</label>
<button type="submit">Create silence</button>
</form></section>"#,
        flash = flash(done),
        nse = enc(ns),
        csrf = csrf_field(csrf),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_urls() {
        assert_eq!(
            esc("<a href=\"x\">'&"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
        assert_eq!(enc("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(enc("web-1.example_x"), "web-1.example_x");
    }
}
