//! Hook definitions: CRUD and PATCH (issue 3).

use axum::Router;

use super::ApiState;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
}
