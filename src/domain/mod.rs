//! Validated input: "parse, don't validate". Each type can only hold an acceptable value,
//! and its `parse` says in plain words what is wrong with an unacceptable one. Handlers turn
//! those words into a 422 naming the field.

use email_address::EmailAddress;

/// Text that both databases can store: PostgreSQL refuses U+0000 in text, and SQLite's C
/// strings end at it. The rule for every text the API accepts, checked once for all bodies,
/// query strings and path segments (`routes::extract`).
pub fn storable(text: &str) -> Result<(), String> {
    if text.contains('\0') {
        return Err("must not contain U+0000 (the NUL character)".into());
    }
    Ok(())
}

/// A display name: trimmed, 1 to 100 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        let length = trimmed.chars().count();
        if length == 0 {
            return Err("must not be empty".into());
        }
        if length > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        if trimmed.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(trimmed.to_string()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An email address, lower-cased so that two spellings of one address are one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub const MAX_CHARS: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let candidate = raw.trim().to_lowercase();
        if candidate.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        // `EmailAddress` accepts display forms ("Ana <a@b.c>") too; we want the bare address.
        let options = email_address::Options::default()
            .with_required_tld()
            .without_display_text()
            .without_domain_literal();
        match EmailAddress::parse_with_options(&candidate, options) {
            Ok(_) => Ok(Self(candidate)),
            Err(_) => Err("is not a valid email address".into()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A password: 8 to 72 bytes. bcrypt reads only the first 72 bytes, so a longer one is
/// refused rather than silently cut.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub const MIN_BYTES: usize = 8;
    pub const MAX_BYTES: usize = 72;

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() < Self::MIN_BYTES {
            return Err(format!("must be at least {} bytes", Self::MIN_BYTES));
        }
        if raw.len() > Self::MAX_BYTES {
            return Err(format!("must be at most {} bytes (bcrypt's limit)", Self::MAX_BYTES));
        }
        Ok(Self(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

// Never print a password, not even in debug logs.
impl std::fmt::Debug for Password {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Password(***)")
    }
}

/// The text of a message: 1 to 10,000 characters, not only white space. Kept as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    pub const MAX_CHARS: usize = 10_000;

    pub fn parse(raw: &str) -> Result<Self, String> {
        storable(raw)?;
        if raw.trim().is_empty() {
            return Err("must not be empty".into());
        }
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        Ok(Self(raw.to_string()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// What a user says about themselves: at most 500 characters, trimmed; may be empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct About(String);

impl About {
    pub const MAX_CHARS: usize = 500;

    pub fn parse(raw: &str) -> Result<Self, String> {
        storable(raw)?;
        let trimmed = raw.trim();
        if trimmed.chars().any(|c| c.is_control() && c != '\n') {
            return Err("must not contain control characters other than line breaks".into());
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        Ok(Self(trimmed.to_string()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A phone number in international form (`+` and the country code), valid in its numbering
/// plan, kept in E.164 (`+442079460958`): the same number written with spaces, dashes or
/// brackets is the same number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.len() > 40 {
            return Err("must be at most 40 characters".into());
        }
        if !raw.starts_with('+') {
            return Err("must start with + and the country code (E.164, e.g. +442079460958)".into());
        }
        let number = phonenumber::parse(None, raw).map_err(|_| "is not a phone number".to_string())?;
        if !phonenumber::is_valid(&number) {
            return Err("is not a valid phone number".into());
        }
        Ok(Self(number.format().mode(phonenumber::Mode::E164).to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A URL a message points at (`imageUrl`, `linkPreviewUrl`): absolute `http://` or
/// `https://` with a host, at most 2,048 bytes, no white space or control characters. Only
/// stored and shown, never fetched by the server; the scheme check keeps `javascript:` and
/// `data:` links out of the `href`s and `src`s that clients build from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalUrl(String);

impl ExternalUrl {
    pub const MAX_BYTES: usize = 2048;

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() > Self::MAX_BYTES {
            return Err(format!("must be at most {} bytes", Self::MAX_BYTES));
        }
        let lowered = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
        let rest = if lowered.starts_with("https://") {
            &raw[8..]
        } else if lowered.starts_with("http://") {
            &raw[7..]
        } else {
            return Err("must be an http:// or https:// URL".into());
        };
        // RFC 3986's characters only (anything else percent-encoded): no spaces, quotes,
        // angle brackets, backslashes (which browsers read as `/`, so the host would not be
        // the one checked here), nor invisible or bidi characters.
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c);
        if !raw.chars().all(allowed) {
            return Err("may hold only URL characters (percent-encode the others)".into());
        }
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = host.rsplit('@').next().unwrap_or_default();
        if host.is_empty() || host.starts_with(':') {
            return Err("must name a host".into());
        }
        Ok(Self(raw.to_string()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A client's idempotency key for a send: 1 to 100 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientId(String);

impl ClientId {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let length = raw.chars().count();
        if length == 0 || length > Self::MAX_CHARS {
            return Err(format!("must be 1 to {} characters", Self::MAX_CHARS));
        }
        Ok(Self(raw.to_string()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A change of a group's members, told to the group as a system message: a readable text
/// and, in `x`, the machine-readable `{type, user: {_id, name}}` that apps render their own way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberChange {
    Added,
    Removed,
    Left,
}

impl MemberChange {
    pub fn kind(self) -> &'static str {
        match self {
            Self::Added => "added_participant",
            Self::Removed => "removed_participant",
            Self::Left => "left_participant",
        }
    }

    /// The system message's text, e.g. "Ana was added to the group".
    pub fn text(self, name: &str) -> String {
        match self {
            Self::Added => format!("{name} was added to the group"),
            Self::Removed => format!("{name} was removed from the group"),
            Self::Left => format!("{name} left the group"),
        }
    }

    /// The system message's `x`, serialised.
    pub fn x(self, user_id: uuid::Uuid, name: &str) -> String {
        serde_json::json!({"type": self.kind(), "user": {"_id": user_id, "name": name}}).to_string()
    }
}

/// Who may start a conversation with a user: their setting, `PATCH /user/me {messagePolicy}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessagePolicy {
    /// Anyone: `POST /conversation` opens a chat, a group addition makes them a member.
    #[default]
    Everyone,
    /// Only with consent: `POST /conversation` opens a chat request, a group addition an
    /// invitation, each waiting for the user to accept.
    Requests,
}

impl MessagePolicy {
    /// As stored (`users.message_policy`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Everyone => "everyone",
            Self::Requests => "requests",
        }
    }

    /// From storage; anything unknown reads as `Requests`, the side that asks first.
    pub fn from_stored(stored: &str) -> Self {
        if stored == "everyone" {
            Self::Everyone
        } else {
            Self::Requests
        }
    }
}

/// A page size: `default` when absent, otherwise 1 to `max`.
pub fn page_limit(requested: Option<u32>, default: u32, max: u32) -> Result<u32, String> {
    match requested {
        None => Ok(default),
        Some(limit) if (1..=max).contains(&limit) => Ok(limit),
        Some(_) => Err(format!("must be between 1 and {max}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::parse("  Ana ").unwrap().into_inner(), "Ana");
        assert!(Name::parse("   ").is_err());
        assert!(Name::parse(&"é".repeat(100)).is_ok());
        assert!(Name::parse(&"é".repeat(101)).is_err());
        assert!(Name::parse("a\u{0}b").is_err());
    }

    #[test]
    fn phones_are_kept_in_e164() {
        assert_eq!(Phone::parse("+44 20 7946 0958").unwrap().as_str(), "+442079460958");
        assert_eq!(Phone::parse(" +1 (415) 555-2671 ").unwrap().as_str(), "+14155552671");
        for bad in ["020 7946 0958", "+44 12", "+999 123456789", "hello", "+"] {
            assert!(Phone::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn external_urls_are_http_with_a_host() {
        for good in [
            "https://example.com/a.jpg",
            "HTTP://example.com",
            "https://u@h:8080/p?q#f",
        ] {
            assert!(ExternalUrl::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "javascript:alert(1)",
            "data:image/png;base64,AAAA",
            "https://",
            "https:///path",
            "https://:80/",
            "https://exa mple.com",
            "https://trusted.example\\@evil.example/",
            "https://example.com/\u{202e}gpj.exe",
            "https://example.com/\"onerror=\"x",
            "https://example.com/<script>",
            "ftp://example.com",
            "//example.com",
        ] {
            assert!(ExternalUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(ExternalUrl::parse(&format!("https://h/{}", "a".repeat(2048))).is_err());
    }

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(Email::parse(" Ana@Example.COM ").unwrap().as_str(), "ana@example.com");
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@localhost",
            "Ana <ana@example.com>",
            "a b@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn passwords_are_8_to_72_bytes() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"x".repeat(72)).is_ok());
        assert!(Password::parse(&"x".repeat(73)).is_err());
        // 36 two-byte characters are 72 bytes; 37 are too many.
        assert!(Password::parse(&"é".repeat(36)).is_ok());
        assert!(Password::parse(&"é".repeat(37)).is_err());
        assert_eq!(
            format!("{:?}", Password::parse("secret-password").unwrap()),
            "Password(***)"
        );
    }

    #[test]
    fn message_text_is_1_to_10000_characters() {
        assert!(MessageText::parse("").is_err());
        assert!(MessageText::parse(" \n\t").is_err());
        assert_eq!(MessageText::parse(" hi ").unwrap().into_inner(), " hi ");
        assert!(MessageText::parse(&"字".repeat(10_000)).is_ok());
        assert!(MessageText::parse(&"字".repeat(10_001)).is_err());
    }

    #[test]
    fn nul_is_never_storable() {
        assert!(storable("a\u{0}b").is_err());
        assert!(MessageText::parse("a\u{0}b").is_err());
        assert!(storable("tab\tand émoji 🙂").is_ok());
    }

    #[test]
    fn page_limits_default_and_cap() {
        assert_eq!(page_limit(None, 20, 100), Ok(20));
        assert_eq!(page_limit(Some(100), 20, 100), Ok(100));
        assert!(page_limit(Some(0), 20, 100).is_err());
        assert!(page_limit(Some(101), 20, 100).is_err());
    }
}
