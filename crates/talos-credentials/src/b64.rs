//! Shared base64 engines.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_encode_padding(false)
    .with_decode_padding_mode(DecodePaddingMode::Indifferent);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);

/// Strict unpadded base64url (JWT segments).
pub(crate) use base64::prelude::BASE64_URL_SAFE_NO_PAD as URL_NO_PAD;

/// Decodes base64url or standard base64, padded or not.
pub(crate) fn decode_any(s: &str) -> Option<Vec<u8>> {
    let engine = if s.bytes().any(|b| b == b'+' || b == b'/') {
        &STANDARD_LENIENT
    } else {
        &URL_SAFE_LENIENT
    };
    engine.decode(s).ok()
}

/// Decodes base64url, padded or not.
pub(crate) fn decode_url(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_LENIENT.decode(s).ok()
}
