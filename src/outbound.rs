//! Calls to URLs that users supply (Web Push endpoints; webhooks later): the rules that keep
//! them from reaching the server's own network (server-side request forgery).
//!
//! - Only `https://` on port 443, to hosts that resolve to public addresses only: no loopback,
//!   private, link-local, shared (CGNAT), documentation, multicast or reserved ranges, in IPv4
//!   or IPv6 (IPv4-mapped and -compatible included). Every push service listens on 443.
//! - `OUTBOUND_ALLOWED_HOSTS` (`host[:port]`, comma-separated) allows the listed hosts
//!   whatever they resolve to, over `http://` too (tests, an internal push relay).
//! - The check runs twice: on the URL when it is registered, and on every address the name
//!   resolves to when a connection is made (the client's resolver drops the others), so a name
//!   that later resolves to 127.0.0.1 (DNS rebinding) reaches nothing. Redirects are never
//!   followed and no proxy is used.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::Url;

/// Ranges no user-supplied URL may reach (besides what `IpAddr`'s own predicates cover).
const FORBIDDEN_RANGES: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    // IPv4-compatible and -translated forms of any IPv4 address (`::1` and `::` among them).
    "::/96",
    "::ffff:0:0:0/96",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

/// Why a URL may not be called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("is not a valid URL")]
    NotAUrl,
    #[error("must be an https:// URL")]
    NotHttps,
    #[error("must not carry a user name or password")]
    Credentials,
    #[error("must name a public host (not loopback, private or link-local)")]
    NotPublic,
    #[error("must use the https port, 443")]
    Port,
}

/// The hosts that `OUTBOUND_ALLOWED_HOSTS` lets through: a host alone allows every port.
#[derive(Clone, Debug, Default)]
pub struct OutboundPolicy {
    allowed: Vec<(String, Option<u16>)>,
}

impl OutboundPolicy {
    /// Parses `OUTBOUND_ALLOWED_HOSTS`: `host[:port]` entries, comma-separated (IPv6 hosts in
    /// brackets when a port follows).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut allowed = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
            let refused = || format!("{entry:?} is not host[:port]");
            // Parsed as http for the host's normal form; the port read off the entry itself
            // (the URL parser forgets a written default port: `:80` would allow every port).
            let parsed = Url::parse(&format!("http://{entry}/")).map_err(|_| refused())?;
            let host = parsed.host_str().ok_or_else(refused)?;
            if parsed.path() != "/" || !parsed.username().is_empty() || parsed.query().is_some() {
                return Err(refused());
            }
            let port = match entry.rsplit_once(':') {
                Some((before, port)) if !before.ends_with(':') && !port.contains(']') => {
                    Some(port.parse::<u16>().map_err(|_| refused())?)
                }
                _ => None,
            };
            allowed.push((host.trim_end_matches('.').to_ascii_lowercase(), port));
        }
        Ok(Self { allowed })
    }

    fn allows(&self, host: &str, port: Option<u16>) -> bool {
        self.allowed
            .iter()
            .any(|(allowed, allowed_port)| allowed == host && allowed_port.is_none_or(|allowed| Some(allowed) == port))
    }

    fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        self.allowed.iter().any(|(allowed, _)| allowed == host)
    }

    /// `raw` if a user may make the server call it.
    pub fn check(&self, raw: &str) -> Result<Url, Refusal> {
        let url = Url::parse(raw).map_err(|_| Refusal::NotAUrl)?;
        let host = url
            .host_str()
            .ok_or(Refusal::NotAUrl)?
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::Credentials);
        }
        let allowed = self.allows(&host, url.port_or_known_default());
        match url.scheme() {
            "https" => {}
            "http" if allowed => {}
            _ => return Err(Refusal::NotHttps),
        }
        if allowed {
            return Ok(url);
        }
        if url.port_or_known_default() != Some(443) {
            return Err(Refusal::Port);
        }
        // IPv6 hosts come bracketed; the URL parser has normalised every address form.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let public = match bare.parse::<IpAddr>() {
            Ok(address) => is_public(address),
            Err(_) => !is_local_name(bare),
        };
        if public { Ok(url) } else { Err(Refusal::NotPublic) }
    }

    /// A client for user-supplied URLs: this policy's resolver, no redirects, no proxy.
    pub fn client(self: &Arc<Self>, timeout: Duration) -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .dns_resolver(Arc::new(PublicResolver { policy: self.clone() }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .build()
    }
}

/// Names that are local by convention, whatever a resolver says.
fn is_local_name(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    name == "localhost" || name.ends_with(".localhost") || name.ends_with(".local") || name.ends_with(".internal")
}

/// Whether `address` is on the public internet.
pub fn is_public(address: IpAddr) -> bool {
    let address = match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if address.is_unspecified() || address.is_loopback() || address.is_multicast() {
        return false;
    }
    !FORBIDDEN_RANGES
        .iter()
        .filter_map(|range| range.parse::<IpNet>().ok())
        .any(|range| range.contains(&address))
}

/// Resolves names as the system does, keeping public addresses only (every address, for the
/// hosts the policy allows).
struct PublicResolver {
    policy: Arc<OutboundPolicy>,
}

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let allowed = self.policy.allows_host(&host);
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let usable: Vec<SocketAddr> = found
                .into_iter()
                .filter(|address| allowed || is_public(address.ip()))
                .collect();
            if usable.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            let addresses: reqwest::dns::Addrs = Box::new(usable.into_iter());
            Ok(addresses)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_https_urls_pass_unless_allowed() {
        let policy = OutboundPolicy::parse("127.0.0.1:9999, push.internal").unwrap();
        for (url, expected) in [
            ("https://fcm.googleapis.com/fcm/send/abc", Ok(())),
            ("https://updates.push.services.mozilla.com/wpush/v2/x", Ok(())),
            ("http://fcm.googleapis.com/x", Err(Refusal::NotHttps)),
            ("ftp://example.com/x", Err(Refusal::NotHttps)),
            ("https://127.0.0.1/x", Err(Refusal::NotPublic)),
            ("https://10.1.2.3/x", Err(Refusal::NotPublic)),
            ("https://192.168.1.1/x", Err(Refusal::NotPublic)),
            ("https://169.254.169.254/latest/meta-data", Err(Refusal::NotPublic)),
            ("https://100.64.0.1/x", Err(Refusal::NotPublic)),
            ("https://[::1]/x", Err(Refusal::NotPublic)),
            ("https://[fe80::1]/x", Err(Refusal::NotPublic)),
            ("https://[fd00::1]/x", Err(Refusal::NotPublic)),
            ("https://[::ffff:127.0.0.1]/x", Err(Refusal::NotPublic)),
            ("https://[::7f00:1]/x", Err(Refusal::NotPublic)),
            ("https://[fec0::1]/x", Err(Refusal::NotPublic)),
            ("https://fcm.googleapis.com:8443/x", Err(Refusal::Port)),
            ("https://localhost./x", Err(Refusal::NotPublic)),
            ("https://0.0.0.0/x", Err(Refusal::NotPublic)),
            ("https://localhost/x", Err(Refusal::NotPublic)),
            ("https://printer.local/x", Err(Refusal::NotPublic)),
            ("https://user:secret@example.com/x", Err(Refusal::Credentials)),
            ("not a url", Err(Refusal::NotAUrl)),
            // The allowed host, over plain http too, on its port only.
            ("http://127.0.0.1:9999/push/1", Ok(())),
            ("https://127.0.0.1:9999/push/1", Ok(())),
            ("http://127.0.0.1:9998/push/1", Err(Refusal::NotHttps)),
            ("https://127.0.0.1:9998/push/1", Err(Refusal::Port)),
            // A host without a port allows every port.
            ("http://push.internal:8443/x", Ok(())),
        ] {
            assert_eq!(policy.check(url).map(|_| ()), expected, "{url}");
        }
    }

    #[test]
    fn the_allowed_list_must_be_hosts() {
        assert!(OutboundPolicy::parse("").unwrap().allowed.is_empty());
        let policy = OutboundPolicy::parse("a.example:80,[::1]:9000,B.Example.").unwrap();
        assert_eq!(
            policy.allowed,
            vec![
                ("a.example".to_string(), Some(80)),
                ("[::1]".to_string(), Some(9000)),
                ("b.example".to_string(), None)
            ],
            "a written default port is kept"
        );
        assert!(policy.check("http://a.example/x").is_ok());
        assert!(policy.check("http://a.example:6379/x").is_err());
        assert!(OutboundPolicy::parse("a.example/path").is_err());
        assert!(OutboundPolicy::parse("user@a.example").is_err());
    }
}
