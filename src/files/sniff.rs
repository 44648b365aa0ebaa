//! What a file is, from its first bytes (the client's `Content-Type` is not believed), and
//! the display name it keeps.

/// How many leading bytes decide the type (office formats need the zip's first entries).
pub const SNIFF_BYTES: usize = 8192;

/// `FILE_ALLOWED_TYPES` unless configured: common images, video, audio, PDF, office documents,
/// zip and plain text. Not the HTML and XML that the magic numbers recognise. Text they do not
/// recognise (an SVG, a page that does not start with a known tag) is stored as `text/plain`;
/// what keeps it from running on the API's origin is how it is served: `text/plain`,
/// `nosniff`, as an attachment, under a sandboxing CSP (`routes/files.rs`).
pub const DEFAULT_ALLOWED_TYPES: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "image/heif",
    "image/avif",
    "video/mp4",
    "video/webm",
    "video/quicktime",
    "video/x-m4v",
    "audio/mpeg",
    "audio/ogg",
    "audio/opus",
    "audio/x-wav",
    "audio/m4a",
    "audio/aac",
    "audio/x-flac",
    "application/pdf",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
    "application/zip",
    "text/plain",
];

/// The content type of a file that begins with `head`: by magic number, else `text/plain` for
/// UTF-8 text without NUL, else `application/octet-stream`.
pub fn content_type(head: &[u8]) -> String {
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().to_string();
    }
    if looks_like_text(head) {
        return "text/plain".into();
    }
    "application/octet-stream".into()
}

fn looks_like_text(head: &[u8]) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(text) => text,
        // Cut inside a character at the end of the sniffed bytes: the rest was valid.
        Err(error) if error.error_len().is_none() => {
            std::str::from_utf8(&head[..error.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    !valid.is_empty()
        && !valid
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\u{c}'))
}

/// Browsers may show these inline; anything else is served as an attachment.
pub fn shown_inline(content_type: &str) -> bool {
    ["image/", "video/", "audio/"]
        .iter()
        .any(|prefix| content_type.starts_with(prefix))
}

/// The name a file is shown with: no folders, no control characters, at most 255 bytes; the
/// client's name is for display only (keys in the store are ids).
pub fn display_name(raw: Option<&str>) -> String {
    let base = raw.unwrap_or_default().rsplit(['/', '\\']).next().unwrap_or_default();
    // Control characters, and the invisible ones that reorder or hide text (bidi overrides
    // make "gpj.exe" read "exe.jpg").
    let invisible = |c: char| matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{061C}' | '\u{FEFF}');
    let cleaned: String = base.chars().filter(|c| !c.is_control() && !invisible(*c)).collect();
    let trimmed = cleaned.trim().trim_start_matches('.');
    let mut name = String::new();
    for c in trimmed.chars() {
        if name.len() + c.len_utf8() > 255 {
            break;
        }
        name.push(c);
    }
    if name.is_empty() { "file".into() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(content_type(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        assert_eq!(content_type(b"%PDF-1.7\n"), "application/pdf");
        assert_eq!(content_type("hello, wörld\n".as_bytes()), "text/plain");
        assert_eq!(content_type(b"\0\x01\x02binary"), "application/octet-stream");
        assert_eq!(content_type(b"<!DOCTYPE html><html><script>"), "text/html");
    }

    #[test]
    fn names_lose_folders_and_control_characters_and_are_bounded() {
        assert_eq!(display_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(display_name(Some("C:\\Users\\ana\\photo.jpg")), "photo.jpg");
        assert_eq!(display_name(Some("a\u{0}b\nc.txt")), "abc.txt");
        assert_eq!(display_name(Some(".hidden")), "hidden");
        assert_eq!(display_name(Some("photo\u{202E}gpj.exe")), "photogpj.exe");
        assert_eq!(display_name(None), "file");
        assert!(display_name(Some(&"é".repeat(300))).len() <= 255);
    }
}
