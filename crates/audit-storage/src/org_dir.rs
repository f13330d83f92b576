//! Organization ids as directory names: injective and safe on
//! case-insensitive file systems. Every byte outside `[a-z0-9._-]` is
//! percent-encoded with uppercase hex (`Org:1` → `%4Frg%3A1`), so two ids
//! that differ only in case never share a directory.

/// The directory name for `organization_id`.
pub fn encode(organization_id: &str) -> String {
    let mut out = String::with_capacity(organization_id.len());
    for b in organization_id.bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The organization id a directory name stands for, if it is one of ours.
pub fn decode(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            if hex.bytes().any(|c| c.is_ascii_lowercase()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let id = String::from_utf8(out).ok()?;
    // Only the canonical encoding counts: no aliases.
    (encode(&id) == name).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_variants_get_distinct_lowercase_safe_names() {
        assert_eq!(encode("org-1"), "org-1");
        assert_eq!(encode("Org:1"), "%4Frg%3A1");
        assert_ne!(encode("ACME").to_lowercase(), encode("acme").to_lowercase());
        for id in ["org-1", "Org:1", "a.b_c-D:9"] {
            assert_eq!(decode(&encode(id)).as_deref(), Some(id));
        }
        assert_eq!(decode("%4frg"), None);
        assert_eq!(decode("%41"), Some("A".into()));
        assert_eq!(decode("%61"), None, "non-canonical alias of 'a'");
    }
}
