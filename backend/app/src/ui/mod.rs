//! ui: the web UI, served on the API port under `/ui` (and `/` redirects there).
//!
//! Pages are rendered on the server and work without JavaScript. Every page and action is an
//! in-process request to the API router with the session's access token, so it passes through
//! the same `authz::gate` as `picketctl` does: a user who may not read a namespace's events
//! gets the API's 403 on the page too.
//!
//! Live updates: the parts of a page that change (table bodies, an event's summary, history
//! and output) carry `id` and `data-live`. `app.js` polls the page's own URL with `live=1`
//! every 2 s; the same handler then answers `{"regions": {id: html}}`, rendered by the same
//! code from the same API requests (so RBAC and token refresh apply to every refresh), and
//! the script swaps the regions that changed.
//!
//! The session is one cookie (HttpOnly, SameSite=Strict, Path=/, and `Secure` on a TLS
//! connection or behind https `--ui-origin`s) holding the user name, the access and refresh
//! tokens from `GET /auth`, and a random CSRF token that every POST form must echo. An access
//! token the API refuses with 401 is refreshed once through `/auth/token` and the request
//! retried; the new token goes back in the cookie. Posts must also come from the UI's origin
//! (`origin.rs`).

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Form, FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::listener::PeerInfo;

mod html;
mod origin;
use html::{Page, enc};
pub use origin::{OriginError, UiConfig};

const COOKIE: &str = "picket_ui";
const API: &str = "/api/core/v2";
const JS: &str = include_str!("app.js");
const CSS: &str = include_str!("app.css");

#[derive(Clone)]
struct Ui {
    /// The API router without the UI: the UI's requests go through its gate.
    api: Router,
    config: std::sync::Arc<UiConfig>,
}

/// The API router with the UI's routes merged in.
pub fn with_ui(api: Router, config: UiConfig) -> Router {
    let ui = Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui", get(home))
        .route("/ui/", get(home))
        .route("/ui/app.js", get(asset_js))
        .route("/ui/app.css", get(asset_css))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/switch", get(switch))
        .route("/ui/ns/{ns}", get(ns_home))
        .route("/ui/ns/{ns}/events", get(events_page))
        .route("/ui/ns/{ns}/events/{entity}/{check}", get(event_page))
        .route(
            "/ui/ns/{ns}/events/{entity}/{check}/{action}",
            post(event_action),
        )
        .route("/ui/ns/{ns}/entities", get(entities_page))
        .route("/ui/ns/{ns}/entities/{name}", get(entity_page))
        .route("/ui/ns/{ns}/checks", get(checks_page))
        .route("/ui/ns/{ns}/checks/{name}", get(check_page))
        .route("/ui/ns/{ns}/checks/{name}/execute", post(check_execute))
        .route(
            "/ui/ns/{ns}/silences",
            get(silences_page).post(silence_create),
        )
        .route("/ui/ns/{ns}/silences/{name}/delete", post(silence_delete))
        .with_state(Ui {
            api: api.clone(),
            config: std::sync::Arc::new(config),
        });
    api.merge(ui)
}

async fn asset_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
        .into_response()
}

async fn asset_css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

#[derive(Clone, Serialize, Deserialize)]
struct Session {
    /// user name
    u: String,
    /// access token
    a: String,
    /// refresh token
    r: String,
    /// CSRF token, echoed by every POST form
    c: String,
}

impl Session {
    fn from_cookie(headers: &axum::http::HeaderMap) -> Option<Session> {
        let raw = headers.get_all(header::COOKIE).iter().find_map(|v| {
            v.to_str().ok()?.split(';').find_map(|kv| {
                let (k, v) = kv.trim().split_once('=')?;
                (k == COOKIE).then(|| v.to_string())
            })
        })?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw)
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn cookie(&self, secure: bool) -> String {
        let v = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(self).unwrap_or_default());
        format!(
            "{COOKIE}={v}; Path=/; HttpOnly; SameSite=Strict{}",
            secure_attr(secure)
        )
    }
}

fn secure_attr(secure: bool) -> &'static str {
    if secure { "; Secure" } else { "" }
}

fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict{}; Max-Age=0",
        secure_attr(secure)
    )
}

/// Why a UI request could not be answered from the API.
enum Fail {
    /// No session, or the tokens no longer work: back to the login form.
    Login,
    /// The API's refusal (status and its message), shown as a page with the same status.
    Api(StatusCode, String),
}

/// One request's view of the session and the API.
struct Ctx {
    ui: Ui,
    sess: Option<Session>,
    /// The session's tokens were refreshed: the response must carry the new cookie.
    renewed: bool,
    peer: Option<ConnectInfo<PeerInfo>>,
    host: Option<HeaderValue>,
    /// The request's `Origin`, when the browser sent one, is the UI's (`UiConfig`).
    origin_ok: bool,
    /// Cookies set by this response are `Secure`.
    secure: bool,
    /// A live-update poll (`GET ...?live=1`): answer the page's live regions as JSON.
    live: bool,
}

/// `live=1` in the query of a GET.
fn is_live_poll(parts: &Parts) -> bool {
    parts.method == Method::GET
        && parts
            .uri
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == "live=1"))
}

impl FromRequestParts<Ui> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, ui: &Ui) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<PeerInfo>>().cloned();
        let value =
            |name: header::HeaderName| parts.headers.get(name).and_then(|h| h.to_str().ok());
        Ok(Ctx {
            ui: ui.clone(),
            sess: Session::from_cookie(&parts.headers),
            renewed: false,
            origin_ok: ui
                .config
                .origin_allowed(value(header::ORIGIN), value(header::HOST)),
            secure: ui
                .config
                .secure_cookies(peer.as_ref().is_some_and(|p| p.0.tls)),
            peer,
            host: parts.headers.get(header::HOST).cloned(),
            live: is_live_poll(parts),
        })
    }
}

fn message_of(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

impl Ctx {
    async fn send(
        &self,
        method: Method,
        path: &str,
        authorization: Option<String>,
        body: Option<&Value>,
    ) -> (StatusCode, Bytes) {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(h) = &self.host {
            b = b.header(header::HOST, h);
        }
        if let Some(a) = authorization {
            b = b.header(header::AUTHORIZATION, a);
        }
        let body = body.map(|v| v.to_string()).unwrap_or_default();
        let Ok(mut req) = b.body(Body::from(body)) else {
            return (StatusCode::BAD_REQUEST, Bytes::from_static(b"bad request"));
        };
        if let Some(p) = &self.peer {
            req.extensions_mut().insert(p.clone());
        }
        let Ok(resp) = self.ui.api.clone().oneshot(req).await;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .unwrap_or_default();
        (status, bytes)
    }

    /// The API's answer to `method path` with this session's token, refreshing it once.
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Fail> {
        let Some(sess) = self.sess.clone() else {
            return Err(Fail::Login);
        };
        let (mut status, mut bytes) = self
            .send(
                method.clone(),
                path,
                Some(format!("Bearer {}", sess.a)),
                body,
            )
            .await;
        if status == StatusCode::UNAUTHORIZED {
            let (s, b) = self
                .send(
                    Method::POST,
                    "/auth/token",
                    Some(format!("Bearer {}", sess.a)),
                    Some(&json!({ "refresh_token": sess.r })),
                )
                .await;
            if !s.is_success() {
                return Err(Fail::Login);
            }
            let tokens: Value = serde_json::from_slice(&b).unwrap_or_default();
            let Some(access) = tokens["access_token"].as_str() else {
                return Err(Fail::Login);
            };
            let mut renewed = sess.clone();
            renewed.a = access.to_string();
            if let Some(r) = tokens["refresh_token"].as_str() {
                renewed.r = r.to_string();
            }
            self.sess = Some(renewed.clone());
            self.renewed = true;
            (status, bytes) = self
                .send(method, path, Some(format!("Bearer {}", renewed.a)), body)
                .await;
            if status == StatusCode::UNAUTHORIZED {
                return Err(Fail::Login);
            }
        }
        if !status.is_success() {
            return Err(Fail::Api(status, message_of(&bytes)));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn get(&mut self, path: &str) -> Result<Value, Fail> {
        self.call(Method::GET, path, None).await
    }

    fn user(&self) -> &str {
        self.sess.as_ref().map(|s| s.u.as_str()).unwrap_or_default()
    }

    fn csrf(&self) -> &str {
        self.sess.as_ref().map(|s| s.c.as_str()).unwrap_or_default()
    }

    /// A POST form must carry the session's CSRF token.
    fn check_csrf(&self, given: &str) -> Result<(), Fail> {
        if !self.origin_ok {
            return Err(cross_origin());
        }
        match &self.sess {
            None => Err(Fail::Login),
            Some(s) if !s.c.is_empty() && s.c == given => Ok(()),
            Some(_) => Err(Fail::Api(
                StatusCode::FORBIDDEN,
                "the form's CSRF token does not match this session; reload the page".into(),
            )),
        }
    }

    /// The namespaces the user may see (the API leaves out the others).
    async fn namespaces(&mut self) -> Vec<String> {
        match self.get(&format!("{API}/namespaces")).await {
            Ok(Value::Array(items)) => items
                .iter()
                .filter_map(|n| n["name"].as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }

    async fn page(&mut self, ns: &str, title: &str, nav: &str, body: String) -> Page {
        let namespaces = self.namespaces().await;
        Page {
            title: title.to_string(),
            ns: ns.to_string(),
            nav: nav.to_string(),
            user: self.user().to_string(),
            csrf: self.csrf().to_string(),
            namespaces,
            body,
        }
    }

    /// The whole page around `body`, or, for a live poll, only its live `regions`.
    async fn show(
        &mut self,
        ns: &str,
        title: &str,
        nav: &str,
        regions: &[(&str, &str)],
        body: impl FnOnce() -> String,
    ) -> Response {
        if self.live {
            let regions: serde_json::Map<String, Value> = regions
                .iter()
                .map(|(id, html)| (id.to_string(), Value::String(html.to_string())))
                .collect();
            let mut resp = self.finish(Json(json!({ "regions": regions })));
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return resp;
        }
        let page = self.page(ns, title, nav, body()).await;
        self.finish(Html(page.render()))
    }

    /// Adds the renewed session cookie, if the tokens were refreshed.
    fn finish(&self, resp: impl IntoResponse) -> Response {
        let mut resp = resp.into_response();
        if self.renewed
            && let Some(s) = &self.sess
            && let Ok(v) = HeaderValue::from_str(&s.cookie(self.secure))
        {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        resp
    }

    fn fail(&self, f: Fail) -> Response {
        match f {
            // A poll cannot follow a redirect to a form: app.js goes to the login page.
            Fail::Login if self.live => (
                StatusCode::UNAUTHORIZED,
                Json(json!({"message": "the session has ended; log in again"})),
            )
                .into_response(),
            Fail::Login => {
                let mut r = Redirect::to("/ui/login").into_response();
                if let Ok(v) = HeaderValue::from_str(&clear_cookie(self.secure)) {
                    r.headers_mut().append(header::SET_COOKIE, v);
                }
                r
            }
            Fail::Api(status, message) if self.live => {
                self.finish((status, Json(json!({ "message": message }))))
            }
            Fail::Api(status, message) => self.finish((
                status,
                Html(html::error_page(status, &message, self.sess.is_some())),
            )),
        }
    }
}

fn cross_origin() -> Fail {
    Fail::Api(
        StatusCode::FORBIDDEN,
        "a form posted from another site is refused".into(),
    )
}

fn random_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 24];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

async fn home(mut ctx: Ctx) -> Response {
    if ctx.sess.is_none() {
        return Redirect::to("/ui/login").into_response();
    }
    let namespaces = ctx.namespaces().await;
    let ns = if namespaces.iter().any(|n| n == "default") || namespaces.is_empty() {
        "default".to_string()
    } else {
        namespaces[0].clone()
    };
    ctx.finish(Redirect::to(&format!("/ui/ns/{}/events", enc(&ns))))
}

async fn ns_home(Path(ns): Path<String>) -> Response {
    Redirect::to(&format!("/ui/ns/{}/events", enc(&ns))).into_response()
}

#[derive(Deserialize)]
struct SwitchQuery {
    ns: String,
}

async fn switch(Query(q): Query<SwitchQuery>) -> Response {
    Redirect::to(&format!("/ui/ns/{}/events", enc(&q.ns))).into_response()
}

#[derive(Deserialize, Default)]
struct LoginQuery {
    #[serde(default)]
    error: Option<String>,
}

async fn login_form(Query(q): Query<LoginQuery>) -> Response {
    Html(html::login_page(q.error.as_deref())).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login(ctx: Ctx, Form(f): Form<LoginForm>) -> Response {
    // Login CSRF (a session planted by another site) has no session token to check yet.
    if !ctx.origin_ok {
        return ctx.fail(cross_origin());
    }
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", f.username, f.password));
    let (status, body) = ctx
        .send(Method::GET, "/auth", Some(format!("Basic {basic}")), None)
        .await;
    if !status.is_success() {
        let why = if status == StatusCode::TOO_MANY_REQUESTS {
            "Too many failed logins; wait a while and try again."
        } else {
            "Wrong username or password."
        };
        return (
            if status == StatusCode::TOO_MANY_REQUESTS {
                status
            } else {
                StatusCode::UNAUTHORIZED
            },
            Html(html::login_page(Some(why))),
        )
            .into_response();
    }
    let tokens: Value = serde_json::from_slice(&body).unwrap_or_default();
    let (Some(a), Some(r)) = (
        tokens["access_token"].as_str(),
        tokens["refresh_token"].as_str(),
    ) else {
        return (
            StatusCode::BAD_GATEWAY,
            Html(html::login_page(Some("The API returned no tokens."))),
        )
            .into_response();
    };
    let sess = Session {
        u: f.username,
        a: a.into(),
        r: r.into(),
        c: random_token(),
    };
    tracing::info!(user = %sess.u, "Web UI login");
    let mut resp = Redirect::to("/ui").into_response();
    if let Ok(v) = HeaderValue::from_str(&sess.cookie(ctx.secure)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(ctx: Ctx, Form(f): Form<CsrfForm>) -> Response {
    if let Err(e) = ctx.check_csrf(&f.csrf) {
        return ctx.fail(e);
    }
    if let Some(s) = &ctx.sess {
        // Revokes the refresh token: the cookie's tokens, if stolen, stop working at the
        // access token's expiry.
        let (status, body) = ctx
            .send(
                Method::POST,
                "/auth/logout",
                Some(format!("Bearer {}", s.a)),
                Some(&json!({ "refresh_token": s.r })),
            )
            .await;
        if !status.is_success() {
            tracing::warn!(status = %status, message = %message_of(&body), "Web UI logout");
        }
    }
    let mut resp = Redirect::to("/ui/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&clear_cookie(ctx.secure)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// Events list filters (query string of the page and of its JSON twin).
#[derive(Deserialize, Default, Clone)]
pub(crate) struct EventFilter {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub entity: String,
    #[serde(default)]
    pub check: String,
    #[serde(default)]
    pub q: String,
}

/// Sensu's severity order: critical, warning, unknown (any other non-zero), then OK.
pub(crate) fn severity_rank(status: i64) -> u8 {
    match status {
        2 => 0,
        1 => 1,
        0 => 3,
        _ => 2,
    }
}

pub(crate) fn status_name(status: i64) -> &'static str {
    match status {
        0 => "ok",
        1 => "warning",
        2 => "critical",
        _ => "unknown",
    }
}

fn ev_str<'a>(ev: &'a Value, ptr: &str) -> &'a str {
    ev.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn ev_i64(ev: &Value, ptr: &str) -> i64 {
    ev.pointer(ptr).and_then(Value::as_i64).unwrap_or_default()
}

/// Filters and sorts events (severity, then newest first).
pub(crate) fn select_events(events: Vec<Value>, f: &EventFilter) -> Vec<Value> {
    let q = f.q.to_lowercase();
    let mut out: Vec<Value> = events
        .into_iter()
        .filter(|ev| {
            let status = ev_i64(ev, "/check/status");
            (f.status.is_empty() || status_name(status) == f.status)
                && (f.entity.is_empty() || ev_str(ev, "/entity/metadata/name") == f.entity)
                && (f.check.is_empty() || ev_str(ev, "/check/metadata/name") == f.check)
                && (q.is_empty()
                    || [
                        "/entity/metadata/name",
                        "/check/metadata/name",
                        "/check/output",
                    ]
                    .iter()
                    .any(|p| ev_str(ev, p).to_lowercase().contains(&q)))
        })
        .collect();
    out.sort_by_key(|ev| {
        (
            severity_rank(ev_i64(ev, "/check/status")),
            std::cmp::Reverse(ev_i64(ev, "/timestamp")),
        )
    });
    out
}

async fn filtered_events(ctx: &mut Ctx, ns: &str, f: &EventFilter) -> Result<Vec<Value>, Fail> {
    let v = ctx
        .get(&format!("{API}/namespaces/{}/events", enc(ns)))
        .await?;
    let items = match v {
        Value::Array(a) => a,
        _ => Vec::new(),
    };
    Ok(select_events(items, f))
}

async fn events_page(
    mut ctx: Ctx,
    Path(ns): Path<String>,
    Query(f): Query<EventFilter>,
) -> Response {
    let evs = match filtered_events(&mut ctx, &ns, &f).await {
        Ok(evs) => evs,
        Err(e) => return ctx.fail(e),
    };
    let rows = html::event_rows(&ns, &evs);
    let count = html::counted(evs.len(), "event", "events");
    ctx.show(
        &ns,
        "Events",
        "events",
        &[("event-rows", &rows), ("event-count", &count)],
        || html::events_body(&f, &count, &rows),
    )
    .await
}

#[derive(Deserialize, Default)]
struct Flash {
    #[serde(default)]
    done: Option<String>,
}

async fn event_page(
    mut ctx: Ctx,
    Path((ns, entity, check)): Path<(String, String, String)>,
    Query(flash): Query<Flash>,
) -> Response {
    let path = format!(
        "{API}/namespaces/{}/events/{}/{}",
        enc(&ns),
        enc(&entity),
        enc(&check)
    );
    let ev = match ctx.get(&path).await {
        Ok(v) => v,
        Err(e) => return ctx.fail(e),
    };
    let summary = html::event_summary(&ns, &ev);
    let history = html::event_history(&ev);
    let output = html::event_output(&ev);
    let csrf = ctx.csrf().to_string();
    ctx.show(
        &ns,
        &format!("{entity} / {check}"),
        "events",
        &[
            ("event-summary", &summary),
            ("event-history", &history),
            ("event-output", &output),
        ],
        || {
            html::event_body(
                &ns,
                &ev,
                html::EventParts {
                    summary: &summary,
                    history: &history,
                    output: &output,
                },
                &csrf,
                flash.done.as_deref(),
            )
        },
    )
    .await
}

#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    expire_on_resolve: Option<String>,
}

async fn event_action(
    mut ctx: Ctx,
    Path((ns, entity, check, action)): Path<(String, String, String, String)>,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Err(e) = ctx.check_csrf(&f.csrf) {
        return ctx.fail(e);
    }
    let nsp = format!("{API}/namespaces/{}", enc(&ns));
    let event_path = format!("{nsp}/events/{}/{}", enc(&entity), enc(&check));
    let result = match action.as_str() {
        "resolve" => {
            // As Sensu's web UI does: the same event, status 0, with who resolved it.
            match ctx.get(&event_path).await {
                Ok(mut ev) => {
                    let now = crate::timefmt::now_unix();
                    ev["timestamp"] = json!(now);
                    ev["check"]["status"] = json!(0);
                    ev["check"]["executed"] = json!(now);
                    ev["check"]["output"] = json!(format!("Resolved manually by {}", ctx.user()));
                    ctx.call(Method::POST, &event_path, Some(&ev)).await
                }
                Err(e) => Err(e),
            }
        }
        "silence" => {
            let body = json!({
                "metadata": {"namespace": ns},
                "subscription": format!("entity:{entity}"),
                "check": check,
                "reason": f.reason,
                "expire_on_resolve": f.expire_on_resolve.is_some(),
            });
            ctx.call(Method::POST, &format!("{nsp}/silenced"), Some(&body))
                .await
        }
        "rerun" => {
            let body = json!({
                "check": check,
                "subscriptions": [format!("entity:{entity}")],
            });
            ctx.call(
                Method::POST,
                &format!("{nsp}/checks/{}/execute", enc(&check)),
                Some(&body),
            )
            .await
        }
        _ => Err(Fail::Api(
            StatusCode::NOT_FOUND,
            format!("no such action: {action}"),
        )),
    };
    match result {
        Ok(_) => ctx.finish(Redirect::to(&format!(
            "/ui/ns/{}/events/{}/{}?done={}",
            enc(&ns),
            enc(&entity),
            enc(&check),
            enc(&action)
        ))),
        Err(e) => ctx.fail(e),
    }
}

async fn entities_page(mut ctx: Ctx, Path(ns): Path<String>) -> Response {
    let nsp = format!("{API}/namespaces/{}", enc(&ns));
    let entities = match ctx.get(&format!("{nsp}/entities")).await {
        Ok(Value::Array(a)) => a,
        Ok(_) => Vec::new(),
        Err(e) => return ctx.fail(e),
    };
    // Keepalive state comes from the keepalive events; a user who may not read events
    // still sees the entities.
    let events = match ctx.get(&format!("{nsp}/events")).await {
        Ok(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    let rows = html::entity_rows(&ns, &entities, &events);
    let count = html::counted(entities.len(), "entity", "entities");
    ctx.show(
        &ns,
        "Entities",
        "entities",
        &[("entity-rows", &rows), ("entity-count", &count)],
        || html::entities_body(&count, &rows),
    )
    .await
}

async fn entity_page(mut ctx: Ctx, Path((ns, name)): Path<(String, String)>) -> Response {
    let nsp = format!("{API}/namespaces/{}", enc(&ns));
    let entity = match ctx.get(&format!("{nsp}/entities/{}", enc(&name))).await {
        Ok(v) => v,
        Err(e) => return ctx.fail(e),
    };
    let events = match ctx.get(&format!("{nsp}/events/{}", enc(&name))).await {
        Ok(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    let events = select_events(events, &EventFilter::default());
    let facts = html::entity_facts(&entity);
    let rows = html::event_rows(&ns, &events);
    ctx.show(
        &ns,
        &name,
        "entities",
        &[("entity-facts", &facts), ("entity-events", &rows)],
        || html::entity_body(&facts, &rows),
    )
    .await
}

async fn checks_page(mut ctx: Ctx, Path(ns): Path<String>) -> Response {
    let checks = match ctx
        .get(&format!("{API}/namespaces/{}/checks", enc(&ns)))
        .await
    {
        Ok(Value::Array(a)) => a,
        Ok(_) => Vec::new(),
        Err(e) => return ctx.fail(e),
    };
    let rows = html::check_rows(&ns, &checks);
    ctx.show(&ns, "Checks", "checks", &[("check-rows", &rows)], || {
        html::checks_body(&rows)
    })
    .await
}

async fn check_page(
    mut ctx: Ctx,
    Path((ns, name)): Path<(String, String)>,
    Query(flash): Query<Flash>,
) -> Response {
    let check = match ctx
        .get(&format!(
            "{API}/namespaces/{}/checks/{}",
            enc(&ns),
            enc(&name)
        ))
        .await
    {
        Ok(v) => v,
        Err(e) => return ctx.fail(e),
    };
    let facts = html::check_facts(&check);
    let csrf = ctx.csrf().to_string();
    ctx.show(&ns, &name, "checks", &[("check-facts", &facts)], || {
        html::check_body(&ns, &name, &facts, &csrf, flash.done.as_deref())
    })
    .await
}

async fn check_execute(
    mut ctx: Ctx,
    Path((ns, name)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(e) = ctx.check_csrf(&f.csrf) {
        return ctx.fail(e);
    }
    let path = format!(
        "{API}/namespaces/{}/checks/{}/execute",
        enc(&ns),
        enc(&name)
    );
    match ctx
        .call(Method::POST, &path, Some(&json!({ "check": name })))
        .await
    {
        Ok(_) => ctx.finish(Redirect::to(&format!(
            "/ui/ns/{}/checks/{}?done=execute",
            enc(&ns),
            enc(&name)
        ))),
        Err(e) => ctx.fail(e),
    }
}

async fn silences_page(
    mut ctx: Ctx,
    Path(ns): Path<String>,
    Query(flash): Query<Flash>,
) -> Response {
    let items = match ctx
        .get(&format!("{API}/namespaces/{}/silenced", enc(&ns)))
        .await
    {
        Ok(Value::Array(a)) => a,
        Ok(_) => Vec::new(),
        Err(e) => return ctx.fail(e),
    };
    let csrf = ctx.csrf().to_string();
    let rows = html::silence_rows(&ns, &items, &csrf);
    ctx.show(
        &ns,
        "Silences",
        "silences",
        &[("silence-rows", &rows)],
        || html::silences_body(&ns, &rows, &csrf, flash.done.as_deref()),
    )
    .await
}

#[derive(Deserialize)]
struct SilenceForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    subscription: String,
    #[serde(default)]
    check: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    expire: String,
    #[serde(default)]
    expire_on_resolve: Option<String>,
}

async fn silence_create(
    mut ctx: Ctx,
    Path(ns): Path<String>,
    Form(f): Form<SilenceForm>,
) -> Response {
    if let Err(e) = ctx.check_csrf(&f.csrf) {
        return ctx.fail(e);
    }
    let expire = match f.expire.trim() {
        "" => -1,
        s => match s.parse::<i64>() {
            Ok(n) if n > 0 => n,
            _ => {
                return ctx.fail(Fail::Api(
                    StatusCode::BAD_REQUEST,
                    format!("expire must be a positive number of seconds, not {s:?}"),
                ));
            }
        },
    };
    let mut body = json!({
        "metadata": {"namespace": ns},
        "reason": f.reason,
        "expire": expire,
        "expire_on_resolve": f.expire_on_resolve.is_some(),
    });
    if !f.subscription.trim().is_empty() {
        body["subscription"] = json!(f.subscription.trim());
    }
    if !f.check.trim().is_empty() {
        body["check"] = json!(f.check.trim());
    }
    match ctx
        .call(
            Method::POST,
            &format!("{API}/namespaces/{}/silenced", enc(&ns)),
            Some(&body),
        )
        .await
    {
        Ok(_) => ctx.finish(Redirect::to(&format!(
            "/ui/ns/{}/silences?done=created",
            enc(&ns)
        ))),
        Err(e) => ctx.fail(e),
    }
}

async fn silence_delete(
    mut ctx: Ctx,
    Path((ns, name)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(e) = ctx.check_csrf(&f.csrf) {
        return ctx.fail(e);
    }
    match ctx
        .call(
            Method::DELETE,
            &format!("{API}/namespaces/{}/silenced/{}", enc(&ns), enc(&name)),
            None,
        )
        .await
    {
        Ok(_) => ctx.finish(Redirect::to(&format!(
            "/ui/ns/{}/silences?done=deleted",
            enc(&ns)
        ))),
        Err(e) => ctx.fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(entity: &str, check: &str, status: i64, ts: i64, out: &str) -> Value {
        json!({"timestamp": ts, "entity": {"metadata": {"name": entity}},
               "check": {"metadata": {"name": check}, "status": status, "output": out}})
    }

    fn names(evs: &[Value]) -> Vec<String> {
        evs.iter()
            .map(|e| ev_str(e, "/check/metadata/name").to_string())
            .collect()
    }

    #[test]
    fn events_sort_by_severity_then_newest() {
        let evs = vec![
            ev("a", "ok-new", 0, 50, ""),
            ev("a", "warn", 1, 10, ""),
            ev("a", "crit-old", 2, 5, ""),
            ev("a", "unknown", 3, 7, ""),
            ev("a", "crit-new", 2, 20, ""),
        ];
        let sorted = select_events(evs, &EventFilter::default());
        assert_eq!(
            names(&sorted),
            ["crit-new", "crit-old", "warn", "unknown", "ok-new"]
        );
    }

    #[test]
    fn events_filter_by_status_entity_check_and_text() {
        let evs = vec![
            ev("web1", "disk", 2, 1, "Disk FULL"),
            ev("web2", "disk", 0, 1, "fine"),
            ev("db1", "load", 1, 1, "load high"),
        ];
        let f = |status: &str, entity: &str, check: &str, q: &str| EventFilter {
            status: status.into(),
            entity: entity.into(),
            check: check.into(),
            q: q.into(),
        };
        assert_eq!(
            names(&select_events(evs.clone(), &f("critical", "", "", ""))),
            ["disk"]
        );
        assert_eq!(select_events(evs.clone(), &f("", "web2", "", "")).len(), 1);
        assert_eq!(
            names(&select_events(evs.clone(), &f("", "", "load", ""))),
            ["load"]
        );
        assert_eq!(
            ev_str(
                &select_events(evs.clone(), &f("", "", "", "full"))[0],
                "/entity/metadata/name"
            ),
            "web1"
        );
        assert!(select_events(evs, &f("unknown", "", "", "")).is_empty());
    }

    #[test]
    fn session_cookie_round_trips_and_is_http_only_strict() {
        let s = Session {
            u: "alice".into(),
            a: "acc".into(),
            r: "ref".into(),
            c: random_token(),
        };
        let cookie = s.cookie(false);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(!cookie.contains("Secure"));
        assert!(s.cookie(true).ends_with("; Secure"));
        assert!(clear_cookie(true).contains("; Secure;"));
        let mut h = axum::http::HeaderMap::new();
        let pair = cookie.split(';').next().unwrap();
        h.insert(header::COOKIE, format!("other=1; {pair}").parse().unwrap());
        let back = Session::from_cookie(&h).expect("decodes");
        assert_eq!((back.u, back.a, back.r, back.c), (s.u, s.a, s.r, s.c));
    }
}
