//! Signed, expiring file links: `<img src>` and `<video>` cannot send a Bearer header, so
//! every `url` the API hands out carries `expires`, `user` and an HMAC-SHA256 `signature` over
//! the file, the user and the expiry. Following one still checks that the user may read the
//! file (a user removed from the group loses it at once); the signature only stands in for
//! the header. The key is derived from the JWT secret, so all instances agree.

use hmac::{KeyInit, Mac};
use uuid::Uuid;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

#[derive(Clone)]
pub struct FileLinks {
    key: Vec<u8>,
    ttl: std::time::Duration,
}

/// Never prints the key.
impl std::fmt::Debug for FileLinks {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FileLinks")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// The query of a signed link.
#[derive(Clone, Copy, Debug)]
pub struct SignedQuery<'a> {
    pub expires: i64,
    pub user: Uuid,
    pub signature: &'a str,
}

impl FileLinks {
    pub fn new(secret: &[u8], ttl: std::time::Duration) -> Self {
        // A key of its own: a link signature can never pass as anything else signed with the secret.
        let mut derive = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
        derive.update(b"chat-api file links v1");
        Self {
            key: derive.finalize().into_bytes().to_vec(),
            ttl,
        }
    }

    fn mac(&self, file: Uuid, user: Uuid, expires: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(format!("{file}:{user}:{expires}").as_bytes());
        mac
    }

    /// The path of `file` (or of its `variant`, e.g. `/thumbnail`) for `user`, valid for the TTL.
    pub fn path(&self, file: Uuid, variant: &str, user: Uuid, now: chrono::DateTime<chrono::Utc>) -> String {
        let expires = now
            .timestamp()
            .saturating_add(i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX));
        let signature = hex(&self.mac(file, user, expires).finalize().into_bytes());
        format!("/api/v1/file/{file}{variant}?expires={expires}&user={user}&signature={signature}")
    }

    /// Does `query` sign `file` for its user, and has it not expired?
    pub fn verify(&self, file: Uuid, query: SignedQuery<'_>, now: chrono::DateTime<chrono::Utc>) -> bool {
        if query.expires < now.timestamp() {
            return false;
        }
        let Some(signature) = unhex(query.signature) else {
            return false;
        };
        // Constant-time comparison.
        self.mac(file, query.user, query.expires)
            .verify_slice(&signature)
            .is_ok()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_verifies_for_its_file_and_user_until_it_expires() {
        let links = FileLinks::new(
            b"secret-secret-secret-secret-secret",
            std::time::Duration::from_secs(60),
        );
        let (file, user, other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let now = chrono::Utc::now();
        let path = links.path(file, "", user, now);
        let query: std::collections::HashMap<&str, &str> = path
            .split_once('?')
            .unwrap()
            .1
            .split('&')
            .map(|pair| pair.split_once('=').unwrap())
            .collect();
        let signed = SignedQuery {
            expires: query["expires"].parse().unwrap(),
            user,
            signature: query["signature"],
        };
        assert!(links.verify(file, signed, now));
        assert!(!links.verify(Uuid::now_v7(), signed, now), "another file");
        assert!(
            !links.verify(file, SignedQuery { user: other, ..signed }, now),
            "another user"
        );
        assert!(
            !links.verify(file, signed, now + chrono::Duration::seconds(61)),
            "expired"
        );
        let tampered = SignedQuery {
            expires: signed.expires + 3600,
            ..signed
        };
        assert!(!links.verify(file, tampered, now), "a later expiry");
    }
}
