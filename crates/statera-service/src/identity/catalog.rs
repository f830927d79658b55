//! The catalog: services, endpoints, regions.

use super::*;
use statera_model::identity::{CatalogEndpoint, CatalogService, Region};

impl Resource for CatalogService {
    const KIND: &'static str = "service";
    const GET: &'static str = "identity:get_service";
    const LIST: &'static str = "identity:list_services";
}

impl Resource for CatalogEndpoint {
    const KIND: &'static str = "endpoint";
    const GET: &'static str = "identity:get_endpoint";
    const LIST: &'static str = "identity:list_endpoints";
}

impl Resource for Region {
    const KIND: &'static str = "region";
    const GET: &'static str = "identity:get_region";
    const LIST: &'static str = "identity:list_regions";
}
