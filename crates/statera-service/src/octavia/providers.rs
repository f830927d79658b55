//! `/providers`: the provider drivers the deployment offers and the flavor
//! and availability-zone metadata keys each accepts, as the policy lets the
//! caller read them.

use super::Providers;
use crate::auth::Context;
use crate::error::{ServiceError, ServiceResult};

/// The enabled providers (name, description), in the deployment's order.
pub fn list(ctx: &Context, d: &impl Providers) -> ServiceResult<Vec<(String, String)>> {
    super::authorize_own(ctx, "provider", "get_all")?;
    Ok(d.provider_list())
}

fn not_enabled(provider: &str) -> ServiceError {
    ServiceError::Invalid(format!("Provider '{provider}' is not enabled."))
}

/// The flavor metadata keys provider `provider` accepts (400 if it is not
/// enabled).
pub fn flavor_capabilities<'a>(
    ctx: &Context,
    d: &'a impl Providers,
    provider: &str,
) -> ServiceResult<&'a [(String, String)]> {
    super::authorize_own(ctx, "provider-flavor", "get_all")?;
    d.flavor_capabilities(provider)
        .ok_or_else(|| not_enabled(provider))
}

/// The availability-zone metadata keys provider `provider` accepts (400 if
/// it is not enabled).
pub fn availability_zone_capabilities<'a>(
    ctx: &Context,
    d: &'a impl Providers,
    provider: &str,
) -> ServiceResult<&'a [(String, String)]> {
    super::authorize_own(ctx, "provider-availability-zone", "get_all")?;
    d.availability_zone_capabilities(provider)
        .ok_or_else(|| not_enabled(provider))
}
