//! Mutators (`/api/core/v2/namespaces/{ns}/mutators`): the generic CRUD and PATCH of `crud`; a javascript mutator's `eval` is compiled as it will run.

use axum::Router;
use proto_spec::ObjectMeta;
use proto_spec::v2::Mutator;
use proto_spec::validate::ValidationError;

use super::ApiState;
use super::crud::{self, NamespacedResource};

impl NamespacedResource for Mutator {
    const STORE_KIND: &'static str = "mutators";
    const COLLECTION: &'static str = "mutators";
    const SINGULAR: &'static str = "mutator";

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
    fn validate_resource(&self) -> Result<(), ValidationError> {
        self.validate()?;
        if self.is_javascript() {
            backend_pipeline::mutator::check_eval_syntax(&self.eval)
                .map_err(|e| ValidationError::new("eval", e.to_string()))?;
        }
        Ok(())
    }
}

pub(super) fn routes() -> Router<ApiState> {
    crud::routes::<Mutator>()
}
