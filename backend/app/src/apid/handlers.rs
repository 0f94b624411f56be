//! Handlers (`/api/core/v2/namespaces/{ns}/handlers`): the generic CRUD and PATCH of `crud`.

use axum::Router;
use proto_spec::ObjectMeta;
use proto_spec::v2::Handler;
use proto_spec::validate::ValidationError;

use super::ApiState;
use super::crud::{self, NamespacedResource};

impl NamespacedResource for Handler {
    const STORE_KIND: &'static str = "handlers";
    const COLLECTION: &'static str = "handlers";
    const SINGULAR: &'static str = "handler";

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
    fn validate_resource(&self) -> Result<(), ValidationError> {
        self.validate()
    }
}

pub(super) fn routes() -> Router<ApiState> {
    crud::routes::<Handler>()
}
