//! Hook definitions (`/api/core/v2/namespaces/{ns}/hooks`): the generic CRUD and PATCH of
//! `crud`, with HookConfig's own validation.

use axum::Router;
use proto_spec::ObjectMeta;
use proto_spec::v2::HookConfig;
use proto_spec::validate::ValidationError;

use super::ApiState;
use super::crud::{self, NamespacedResource};

impl NamespacedResource for HookConfig {
    const STORE_KIND: &'static str = "hooks";
    const COLLECTION: &'static str = "hooks";
    const SINGULAR: &'static str = "hook";

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
    crud::routes::<HookConfig>()
}
