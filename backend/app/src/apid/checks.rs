//! Checks: CRUD, PATCH and adhoc execution (issue 3).

use axum::Router;

use super::ApiState;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
}
