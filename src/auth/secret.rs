//! Secrets that are generated when not configured and kept in the data folder (beside the
//! SQLite file) so that they survive a restart: the JWT signing secret (`JWT_SECRET`) and the
//! VAPID key of Web Push (`VAPID_PRIVATE_KEY`).

use std::io::Write;
use std::path::Path;

use crate::auth::tokens::random_hex;

/// A secret kept in a file of the data folder when its variable is unset.
pub struct KeptSecret {
    /// The variable that sets it (for the warnings).
    pub variable: &'static str,
    pub file: &'static str,
    /// Makes a new one (at least 32 characters, no surrounding whitespace).
    pub generate: fn() -> String,
}

/// The JWT signing secret.
pub const JWT_SECRET: KeptSecret = KeptSecret {
    variable: "JWT_SECRET",
    file: "jwt_secret",
    generate: || random_hex(32),
};

pub fn load_or_generate(configured: Option<&str>, data_dir: &Path) -> std::io::Result<String> {
    load_or_create(&JWT_SECRET, configured, data_dir)
}

/// `configured`, else the secret kept in `data_dir`, else a new one, kept there.
pub fn load_or_create(kept: &KeptSecret, configured: Option<&str>, data_dir: &Path) -> std::io::Result<String> {
    if let Some(secret) = configured {
        return Ok(secret.to_string());
    }
    let variable = kept.variable;
    let path = data_dir.join(kept.file);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_string();
        if existing.len() >= 32 {
            tracing::warn!(path = %path.display(), "{variable} is not set: using the secret generated earlier");
            return Ok(existing);
        }
    }
    std::fs::create_dir_all(data_dir)?;
    let secret = (kept.generate)();
    let file = kept.file;
    // Written whole to a file of its own, then linked into place: linking fails if the file
    // exists, so of two instances starting together on one folder exactly one secret wins,
    // and nobody ever reads a half-written one.
    let draft = data_dir.join(format!("{file}.{}.tmp", random_hex(8)));
    {
        let mut file = open_private(&draft)?;
        file.write_all(secret.as_bytes())?;
        file.sync_all()?;
    }
    let linked = std::fs::hard_link(&draft, &path);
    let _ = std::fs::remove_file(&draft);
    match linked {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let existing = std::fs::read_to_string(&path)?.trim().to_string();
            if existing.len() >= 32 {
                tracing::warn!(path = %path.display(), "{variable} is not set: using the secret another start generated");
                return Ok(existing);
            }
            // A short leftover from before: replace it.
            std::fs::write(&path, secret.as_bytes())?;
        }
        Err(error) => return Err(error),
    }
    tracing::warn!(
        path = %path.display(),
        "{variable} is not set: generated a secret and saved it; set {variable} in production \
         (and the same one on every instance)"
    );
    Ok(secret)
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::create(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_racing_on_one_folder_agree_on_one_secret() {
        let folder = std::env::temp_dir().join(format!("chat-api-secret-race-{}", uuid::Uuid::now_v7()));
        let starts: Vec<_> = (0..8)
            .map(|_| {
                let folder = folder.clone();
                std::thread::spawn(move || load_or_generate(None, &folder).unwrap())
            })
            .collect();
        let secrets: std::collections::HashSet<String> =
            starts.into_iter().map(|start| start.join().unwrap()).collect();
        assert_eq!(secrets.len(), 1, "{secrets:?}");
        std::fs::remove_dir_all(folder).unwrap();
    }

    #[test]
    fn a_generated_secret_is_kept_for_the_next_start() {
        let folder = std::env::temp_dir().join(format!("chat-api-secret-{}", uuid::Uuid::now_v7()));
        let first = load_or_generate(None, &folder).unwrap();
        let second = load_or_generate(None, &folder).unwrap();
        assert_eq!(first, second);
        assert_eq!(first.len(), 64);
        assert_eq!(load_or_generate(Some("configured"), &folder).unwrap(), "configured");
        std::fs::remove_dir_all(folder).unwrap();
    }
}
