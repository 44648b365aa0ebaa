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

/// What a signed link allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    /// `GET` the file or its thumbnail.
    Read,
    /// `PUT` the bytes of a two-step upload.
    Upload,
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

    /// Over the file, the user, the expiry and what the link lets one do: a download link
    /// (`Purpose::Read`) can never pass as an upload link.
    fn mac(&self, purpose: Purpose, file: Uuid, user: Uuid, expires: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        match purpose {
            Purpose::Read => mac.update(format!("{file}:{user}:{expires}").as_bytes()),
            Purpose::Upload => mac.update(format!("upload:{file}:{user}:{expires}").as_bytes()),
        }
        mac
    }

    /// When a link made at `now` for `ttl` stops working, in Unix seconds.
    pub fn expiry(now: chrono::DateTime<chrono::Utc>, ttl: std::time::Duration) -> i64 {
        now.timestamp()
            .saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX))
    }

    /// Where `user` `PUT`s the bytes of their two-step upload `file` (a local store), valid
    /// until `expires` (Unix seconds, see [`FileLinks::expiry`]).
    pub fn upload_path(&self, file: Uuid, user: Uuid, expires: i64) -> String {
        let signature = hex(&self.mac(Purpose::Upload, file, user, expires).finalize().into_bytes());
        format!("/api/v1/file/{file}/content?expires={expires}&user={user}&signature={signature}")
    }

    /// The path of `file` (or of its `variant`, e.g. `/thumbnail`) for `user`, valid for the TTL.
    pub fn path(&self, file: Uuid, variant: &str, user: Uuid, now: chrono::DateTime<chrono::Utc>) -> String {
        let expires = Self::expiry(now, self.ttl);
        let signature = hex(&self.mac(Purpose::Read, file, user, expires).finalize().into_bytes());
        format!("/api/v1/file/{file}{variant}?expires={expires}&user={user}&signature={signature}")
    }

    /// Does `query` sign `file` for its user, and has it not expired?
    pub fn verify(&self, file: Uuid, query: SignedQuery<'_>, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.verify_for(Purpose::Read, file, query, now)
    }

    /// Is `query` a valid upload link for `file`?
    pub fn verify_upload(&self, file: Uuid, query: SignedQuery<'_>, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.verify_for(Purpose::Upload, file, query, now)
    }

    fn verify_for(
        &self,
        purpose: Purpose,
        file: Uuid,
        query: SignedQuery<'_>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> bool {
        if query.expires < now.timestamp() {
            return false;
        }
        let Some(signature) = unhex(query.signature) else {
            return false;
        };
        // Constant-time comparison.
        self.mac(purpose, file, query.user, query.expires)
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
        assert!(
            !links.verify_upload(file, signed, now),
            "a download link is no upload link"
        );
        let upload = links.upload_path(file, user, FileLinks::expiry(now, std::time::Duration::from_secs(60)));
        let upload_signature = upload.rsplit_once("signature=").unwrap().1;
        let upload_expires = upload.split("expires=").nth(1).unwrap().split('&').next().unwrap();
        let upload = SignedQuery {
            expires: upload_expires.parse().unwrap(),
            user,
            signature: upload_signature,
        };
        assert!(links.verify_upload(file, upload, now));
        assert!(!links.verify(file, upload, now), "an upload link is no download link");
    }
}
