//! Event filters (`/api/core/v2/namespaces/{ns}/filters`): the generic CRUD and PATCH of `crud`; every expression is compiled by the JavaScript engine that will run it, so a syntax error is a 400 naming the expression.

use axum::Router;
use proto_spec::ObjectMeta;
use proto_spec::v2::EventFilter;
use proto_spec::validate::ValidationError;

use super::ApiState;
use super::crud::{self, NamespacedResource};

impl NamespacedResource for EventFilter {
    const STORE_KIND: &'static str = "event-filters";
    const COLLECTION: &'static str = "filters";
    const SINGULAR: &'static str = "filter";

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
    fn validate_resource(&self) -> Result<(), ValidationError> {
        self.validate()?;
        for (i, expr) in self.expressions().iter().enumerate() {
            jsexpr::check_syntax(expr)
                .map_err(|e| ValidationError::new(format!("expressions[{i}]"), e.to_string()))?;
        }
        Ok(())
    }
}

pub(super) fn routes() -> Router<ApiState> {
    crud::routes::<EventFilter>()
}
