//! What every handler shares ([`AppState`]), below the routes that use it and above the
//! services it holds. `startup` builds it; nothing here knows about routes.

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::{HttpRequest, web};

use crate::auth::AuthService;
use crate::error::ApiError;
use crate::limits::{Action, RateLimits};
use crate::realtime::Hub;
use crate::store::Store;
use crate::views::EmailPolicy;

pub struct AppState {
    /// The reverse proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub store: Store,
    pub hub: Arc<Hub>,
    pub push: Arc<crate::push::PushService>,
    /// Also registered as app data of its own, for the `AuthUser` extractor.
    pub auth: web::Data<AuthService>,
    pub limits: RateLimits,
    /// Whose emails users see (`USER_EMAILS_VISIBLE`).
    pub emails: EmailPolicy,
    pub production: bool,
    /// The bytes of uploads.
    pub files: crate::files::FileStore,
    /// Signs and checks the file links handed out in answers.
    pub file_links: crate::files::links::FileLinks,
    /// `FILE_QUOTA_BYTES`: the most one user's files may take.
    pub file_quota: Option<u64>,
    /// `FILE_MAX_CONCURRENT_UPLOADS`, per user.
    pub upload_slots: crate::files::UploadSlots,
    /// How long a two-step upload's `uploadUrl` works: `FILE_URL_TTL`, but never past
    /// `FILE_ORPHAN_TTL` (the announced file is swept then, and bytes arriving later would
    /// belong to no one).
    pub upload_url_ttl: std::time::Duration,
}

impl AppState {
    /// Counts a request against the client address's budget for the auth endpoints: 429
    /// past it.
    pub fn check_auth_rate_limit(&self, request: &HttpRequest) -> Result<(), ApiError> {
        let Some(address) = self.client_address(request) else {
            return Ok(());
        };
        self.auth
            .limiter
            .check(address)
            .map_err(|wait| ApiError::rate_limited(wait).with_policy("auth", self.auth.limiter.per_minute_budget(), 60))
    }

    /// Signs file links for `reader`, valid from now for `FILE_URL_TTL`.
    pub fn file_signer(&self, reader: uuid::Uuid) -> impl Fn(uuid::Uuid, &str) -> String + '_ {
        let now = crate::store::now();
        move |file, variant| self.file_links.path(file, variant, reader, now)
    }

    /// A slot for one more upload of `user`'s: 429 while they have
    /// `FILE_MAX_CONCURRENT_UPLOADS` running. Hold it for the upload.
    pub fn upload_slot(&self, user: uuid::Uuid) -> Result<crate::files::UploadSlot, ApiError> {
        self.upload_slots.try_take(user).ok_or_else(|| {
            ApiError::rate_limited(1)
                .with_message("you have as many uploads running as allowed; wait for one to finish")
        })
    }

    /// Counts one `action` by `user` against their budget: 429 past it.
    pub fn check_rate_limit(&self, action: Action, user: uuid::Uuid) -> Result<(), ApiError> {
        self.limits.check(action, user)
    }

    /// Who is calling: the peer, or, when the peer is a trusted proxy, the right-most
    /// `X-Forwarded-For` entry that is not a trusted proxy itself. An entry that does not
    /// parse, or a header that is missing, leaves the peer address: a client can never choose
    /// its own address or escape the limit.
    pub fn client_address(&self, request: &HttpRequest) -> Option<IpAddr> {
        let peer = request.peer_addr().map(|address| address.ip())?;
        Some(client_behind(
            peer,
            &self.trusted_proxies,
            forwarded_for(request).as_deref(),
        ))
    }
}

fn forwarded_for(request: &HttpRequest) -> Option<String> {
    let values: Vec<&str> = request
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// See [`AppState::client_address`].
fn client_behind(peer: IpAddr, trusted: &[ipnet::IpNet], forwarded_for: Option<&str>) -> IpAddr {
    let is_trusted = |address: &IpAddr| trusted.iter().any(|net| net.contains(address));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(forwarded_for) = forwarded_for else {
        return peer;
    };
    for entry in forwarded_for.rsplit(',') {
        match parse_ip(entry.trim()) {
            Some(address) if is_trusted(&address) => continue,
            Some(address) => return address,
            None => return peer,
        }
    }
    peer
}

/// An address as a proxy writes it: `1.2.3.4`, `1.2.3.4:5678`, `[::1]:5678` or `::1`.
fn parse_ip(address: &str) -> Option<IpAddr> {
    address
        .parse()
        .ok()
        .or_else(|| address.parse::<std::net::SocketAddr>().ok().map(|socket| socket.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_right_most_untrusted_forwarded_address() {
        let trusted: Vec<ipnet::IpNet> = vec!["127.0.0.0/8".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        let client = |peer, header| client_behind(peer, &trusted, header).to_string();
        // The client's own (spoofed) entries come first; the proxies append on the right.
        assert_eq!(client(proxy, Some("6.6.6.6, 198.51.100.4, 10.1.2.3")), "198.51.100.4");
        assert_eq!(client(proxy, Some("198.51.100.4:5000")), "198.51.100.4");
        assert_eq!(client(proxy, Some("garbage, 198.51.100.4")), "198.51.100.4");
        // Unparsable or absent: the peer, never "no address".
        assert_eq!(client(proxy, Some("198.51.100.4, garbage")), "127.0.0.1");
        assert_eq!(client(proxy, None), "127.0.0.1");
        assert_eq!(client(proxy, Some("10.0.0.1")), "127.0.0.1");
        // A peer that is no trusted proxy cannot name another address.
        assert_eq!(client(stranger, Some("198.51.100.4")), "203.0.113.9");
    }
}
