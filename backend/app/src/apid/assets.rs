//! Asset definitions (`/api/core/v2/namespaces/{ns}/assets`, sensu-compat 1.10): the generic
//! CRUD and PATCH of `crud`, with Asset's own validation (name rules, either `builds` or
//! `url` + `sha512`, filters parsed by the JavaScript engine that will run them).

use axum::Router;
use proto_spec::ObjectMeta;
use proto_spec::v2::Asset;
use proto_spec::validate::ValidationError;

use super::ApiState;
use super::crud::{self, NamespacedResource};

impl NamespacedResource for Asset {
    const STORE_KIND: &'static str = "assets";
    const COLLECTION: &'static str = "assets";
    const SINGULAR: &'static str = "asset";

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
    fn validate_resource(&self) -> Result<(), ValidationError> {
        self.validate()?;
        // Filters run on the backend (build selection), so they are parsed by its engine now
        // rather than failing for every agent later.
        let check = |field: String, expr: &str| {
            jsexpr::check_syntax(expr).map_err(|e| ValidationError::new(field, e.to_string()))
        };
        for (i, f) in self.filters.iter().flatten().enumerate() {
            check(format!("filters[{i}]"), f)?;
        }
        for (b, build) in self.builds().iter().enumerate() {
            for (i, f) in build.filters.iter().flatten().enumerate() {
                check(format!("builds[{b}].filters[{i}]"), f)?;
            }
        }
        Ok(())
    }
}

pub(super) fn routes() -> Router<ApiState> {
    crud::routes::<Asset>()
}
