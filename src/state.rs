//! What every handler shares ([`AppState`]), below the routes that use it and above the
//! services it holds. `startup` builds it; nothing here knows about routes.

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::{HttpRequest, web};

use crate::auth::AuthService;
use crate::error::ApiError;
use crate::realtime::Hub;
use crate::store::Store;

pub struct AppState {
    /// Take the client address from X-Forwarded-For (`TRUST_PROXY`).
    pub trust_proxy: bool,
    pub store: Store,
    pub hub: Arc<Hub>,
    /// Also registered as app data of its own, for the `AuthUser` extractor.
    pub auth: web::Data<AuthService>,
    pub production: bool,
}

impl AppState {
    /// Counts a request against the client's budget for the auth endpoints: 429 past it.
    pub fn check_auth_rate_limit(&self, request: &HttpRequest) -> Result<(), ApiError> {
        let address = if self.trust_proxy {
            // Behind a reverse proxy every peer is the proxy: count the client it names
            // (X-Forwarded-For / Forwarded). Only trustworthy when the proxy sets it.
            request.connection_info().realip_remote_addr().and_then(parse_ip)
        } else {
            request.peer_addr().map(|address| address.ip())
        };
        let Some(address) = address else { return Ok(()) };
        self.auth.limiter.check(address).map_err(ApiError::rate_limited)
    }
}

/// An address as a proxy writes it: `1.2.3.4`, `1.2.3.4:5678`, `[::1]:5678` or `::1`.
fn parse_ip(address: &str) -> Option<IpAddr> {
    address
        .parse()
        .ok()
        .or_else(|| address.parse::<std::net::SocketAddr>().ok().map(|socket| socket.ip()))
}
