//! Uploaded photos: their size in pixels and a thumbnail, read under limits.
//!
//! A photo's file stays byte for byte what was sent (it is the sender's file). Its thumbnail is
//! decoded and re-encoded, so it carries no EXIF, GPS or other metadata, and it is upright: the
//! EXIF orientation a phone writes is applied to the pixels first, and `width`/`height` are
//! those of the upright picture.
//!
//! A small file can declare a huge picture (a "decompression bomb": a few KiB of PNG or GIF
//! that would need gigabytes once decoded). The header is read first and a picture of more
//! than [`ImageLimits::max_pixels`] pixels is refused before any pixel is decoded; the decoder
//! is also held to [`ImageLimits::max_alloc`] bytes. Decodes run on the blocking pool, at most
//! [`ImageLimits::concurrent`] at a time per instance, so photos cannot take all the memory or
//! every core.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

/// The longest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIDE: u32 = 320;
/// Photos larger than this are stored without a thumbnail rather than read into memory.
pub const MAX_DECODED_FILE_BYTES: u64 = 32 * 1024 * 1024;

#[derive(Clone, Copy, Debug)]
pub struct ImageLimits {
    /// Width x height above which a picture is refused (`IMAGE_MAX_PIXELS`).
    pub max_pixels: u64,
    /// What the decoder may allocate for one picture, in bytes.
    pub max_alloc: u64,
    /// Decodes at once, per instance.
    pub concurrent: usize,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self {
            // A 50-megapixel phone photo passes; 8-bit RGBA at this size is 200 MB.
            max_pixels: 50_000_000,
            max_alloc: 256 * 1024 * 1024,
            concurrent: 1,
        }
    }
}

/// What decoding a photo taught us.
#[derive(Debug)]
pub struct ImageFacts {
    /// Of the upright picture.
    pub width: u32,
    pub height: u32,
    pub thumbnail: Thumbnail,
}

#[derive(Debug)]
pub struct Thumbnail {
    pub bytes: Vec<u8>,
    /// `image/jpeg`, or `image/png` for pictures with transparency.
    pub content_type: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Declares more pixels than allowed, or needs more memory to decode: refused.
    #[error("the image is {width} x {height} pixels; at most {max_pixels} pixels are accepted")]
    TooLarge { width: u32, height: u32, max_pixels: u64 },
    /// Past a decoder's limit before its size was known: refused.
    #[error("the image needs more memory to decode than is allowed: {0}")]
    TooBig(String),
    /// Not decodable (truncated, corrupt, a variant the decoder lacks): kept without thumbnail.
    #[error("the image cannot be decoded: {0}")]
    Unreadable(String),
}

/// The decoder for a sniffed content type, if photos of that type get thumbnails.
pub fn format_of(content_type: &str) -> Option<ImageFormat> {
    match content_type {
        "image/jpeg" => Some(ImageFormat::Jpeg),
        "image/png" => Some(ImageFormat::Png),
        "image/gif" => Some(ImageFormat::Gif),
        "image/webp" => Some(ImageFormat::WebP),
        _ => None,
    }
}

/// Decodes `bytes` (a picture in `format`) under `limits`: its upright size and a thumbnail.
/// CPU-bound: call it on the blocking pool.
pub fn inspect(bytes: &[u8], format: ImageFormat, limits: &ImageLimits) -> Result<ImageFacts, ImageError> {
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_alloc = Some(limits.max_alloc);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(decoder_limits);
    let mut decoder = reader.into_decoder().map_err(|error| refusal(error, None, limits))?;
    let (width, height) = decoder.dimensions();
    let too_large = || ImageError::TooLarge {
        width,
        height,
        max_pixels: limits.max_pixels,
    };
    // The pixel count, and what the decoded picture takes: `from_decoder` allocates that at
    // once, and the decoders only hold themselves to `max_alloc` for their own buffers.
    if u64::from(width) * u64::from(height) > limits.max_pixels || decoder.total_bytes() > limits.max_alloc {
        return Err(too_large());
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let picture = DynamicImage::from_decoder(decoder).map_err(|error| refusal(error, Some((width, height)), limits))?;
    // Small first, then upright: turning the full picture would copy it whole.
    let mut small = picture.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE);
    drop(picture);
    small.apply_orientation(orientation);
    use image::metadata::Orientation::{Rotate90, Rotate90FlipH, Rotate270, Rotate270FlipH};
    let (width, height) = match orientation {
        Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH => (height, width),
        _ => (width, height),
    };
    Ok(ImageFacts {
        width,
        height,
        thumbnail: encode(&small)?,
    })
}

/// Re-encodes `small`: JPEG, or PNG when it has transparency. No metadata is written.
fn encode(small: &DynamicImage) -> Result<Thumbnail, ImageError> {
    let mut bytes = Vec::new();
    let unreadable = |error: image::ImageError| ImageError::Unreadable(error.to_string());
    let content_type = if small.color().has_alpha() {
        small
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .map_err(unreadable)?;
        "image/png"
    } else {
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 80);
        small.to_rgb8().write_with_encoder(encoder).map_err(unreadable)?;
        "image/jpeg"
    };
    Ok(Thumbnail { bytes, content_type })
}

/// A decoder's error as ours: past a limit is a refusal, anything else leaves the photo
/// without a thumbnail.
fn refusal(error: image::ImageError, size: Option<(u32, u32)>, limits: &ImageLimits) -> ImageError {
    match (error, size) {
        (image::ImageError::Limits(_), Some((width, height))) => ImageError::TooLarge {
            width,
            height,
            max_pixels: limits.max_pixels,
        },
        (image::ImageError::Limits(limit), None) => ImageError::TooBig(limit.to_string()),
        (other, _) => ImageError::Unreadable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        DynamicImage::new_rgb8(width, height)
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .unwrap();
        bytes
    }

    #[test]
    fn a_thumbnail_fits_in_320_pixels_and_keeps_the_shape() {
        let facts = inspect(&png(1000, 500), ImageFormat::Png, &ImageLimits::default()).unwrap();
        assert_eq!((facts.width, facts.height), (1000, 500));
        assert_eq!(facts.thumbnail.content_type, "image/jpeg");
        let thumbnail = image::load_from_memory(&facts.thumbnail.bytes).unwrap();
        assert_eq!((thumbnail.width(), thumbnail.height()), (320, 160));
    }

    #[test]
    fn more_pixels_than_allowed_are_refused_before_decoding() {
        let limits = ImageLimits {
            max_pixels: 100,
            ..ImageLimits::default()
        };
        let refused = inspect(&png(11, 10), ImageFormat::Png, &limits);
        assert!(matches!(
            refused,
            Err(ImageError::TooLarge {
                width: 11,
                height: 10,
                ..
            })
        ));
        assert!(inspect(&png(10, 10), ImageFormat::Png, &limits).is_ok());
    }

    #[test]
    fn a_picture_needing_more_memory_than_allowed_is_refused() {
        let limits = ImageLimits {
            // 100 x 100 RGB is 30,000 bytes decoded.
            max_alloc: 29_999,
            ..ImageLimits::default()
        };
        let refused = inspect(&png(100, 100), ImageFormat::Png, &limits);
        assert!(matches!(refused, Err(ImageError::TooLarge { .. })), "{refused:?}");
    }

    #[test]
    fn a_sideways_photo_is_measured_and_thumbnailed_upright() {
        let mut bytes = Vec::new();
        let mut encoder = image::codecs::jpeg::JpegEncoder::new(&mut bytes);
        let mut exif = b"II\x2a\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0".to_vec();
        exif.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0]);
        image::ImageEncoder::set_exif_metadata(&mut encoder, exif).unwrap();
        image::ImageEncoder::write_image(
            encoder,
            &vec![0; 640 * 320 * 3],
            640,
            320,
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
        let facts = inspect(&bytes, ImageFormat::Jpeg, &ImageLimits::default()).unwrap();
        assert_eq!((facts.width, facts.height), (320, 640));
        let thumbnail = image::load_from_memory(&facts.thumbnail.bytes).unwrap();
        assert_eq!((thumbnail.width(), thumbnail.height()), (160, 320));
    }

    #[test]
    fn garbage_is_unreadable_not_refused() {
        let outcome = inspect(
            b"\x89PNG\r\n\x1a\nnot really",
            ImageFormat::Png,
            &ImageLimits::default(),
        );
        assert!(matches!(outcome, Err(ImageError::Unreadable(_))));
    }
}
