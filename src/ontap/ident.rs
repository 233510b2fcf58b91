//! A snapshot's uuid and name held compactly in a listing: [`Uuid`], 16 bytes in place of the
//! 36 characters of ONTAP's canonical form, and [`Name`], a short name kept inside the record,
//! both reading back as exactly the text ONTAP gave (shown, sent back, journaled and rendered
//! the same).
//!
//! A whole listing holds about ten records per volume (a hundred thousand at 10,000 volumes),
//! and it is held twice while the next whole read is built: an owned `String` for each of the
//! two costs 24 bytes plus a heap block (48 bytes for a uuid, 32 for a name like
//! `hourly.2026-12-07_0505`), 128 bytes a record where these take 48.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// Characters of a canonical uuid: 32 hex digits in groups of 8-4-4-4-12.
const UUID_LEN: usize = 36;
/// Where the canonical form has its hyphens.
const HYPHENS: [usize; 4] = [8, 13, 18, 23];

/// An identifier as ONTAP gave it: 16 bytes when it is a canonical uuid in lower case
/// (`1cd8a442-86d1-11e0-ae1c-123478563412`, what ONTAP returns), otherwise the text itself,
/// unchanged. Either way it reads back as the same text ([`Uuid::text`], `Display`), compares
/// with strings by that text, and orders and hashes as it.
#[derive(Clone)]
pub struct Uuid(UuidRepr);

#[derive(Clone)]
enum UuidRepr {
    /// The 16 bytes of a canonical lower-case uuid.
    Canonical([u8; 16]),
    /// Any other text, as given (upper case, braces, empty, too long: kept byte for byte).
    Other(Box<str>),
}

/// The value of a lower-case hex digit.
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// The 16 bytes of `s` when it is a canonical lower-case uuid.
fn parse_canonical(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != UUID_LEN || HYPHENS.iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let mut digits = b
        .iter()
        .enumerate()
        .filter(|(i, _)| !HYPHENS.contains(i))
        .map(|(_, &d)| hex_value(d));
    let mut out = [0u8; 16];
    for byte in &mut out {
        let (hi, lo) = (digits.next()??, digits.next()??);
        *byte = hi << 4 | lo;
    }
    Some(out)
}

/// The canonical text of 16 bytes.
fn format_canonical(bytes: &[u8; 16]) -> [u8; UUID_LEN] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; UUID_LEN];
    let mut at = 0;
    for &byte in bytes {
        while HYPHENS.contains(&at) {
            at += 1;
        }
        out[at] = DIGITS[usize::from(byte >> 4)];
        out[at + 1] = DIGITS[usize::from(byte & 0xf)];
        at += 2;
    }
    out
}

impl Uuid {
    /// `s` held compactly when it is a canonical lower-case uuid, as given otherwise.
    pub fn new(s: &str) -> Uuid {
        match parse_canonical(s) {
            Some(bytes) => Uuid(UuidRepr::Canonical(bytes)),
            None => Uuid(UuidRepr::Other(s.into())),
        }
    }

    /// The text ONTAP gave, borrowed as a `str` (`&*uuid.text()`).
    pub fn text(&self) -> UuidText<'_> {
        match &self.0 {
            UuidRepr::Canonical(bytes) => UuidText::Canonical(format_canonical(bytes)),
            UuidRepr::Other(s) => UuidText::Other(s),
        }
    }
}

/// A [`Uuid`]'s text: formatted on the stack for a canonical one, borrowed otherwise. Reads as
/// a `str`.
pub enum UuidText<'a> {
    Canonical([u8; UUID_LEN]),
    Other(&'a str),
}

impl Deref for UuidText<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            // Only ever the ASCII of `format_canonical`.
            UuidText::Canonical(b) => std::str::from_utf8(b).unwrap_or_default(),
            UuidText::Other(s) => s,
        }
    }
}

impl From<&str> for Uuid {
    fn from(s: &str) -> Uuid {
        Uuid::new(s)
    }
}

impl From<String> for Uuid {
    fn from(s: String) -> Uuid {
        Uuid::new(&s)
    }
}

impl From<&String> for Uuid {
    fn from(s: &String) -> Uuid {
        Uuid::new(s)
    }
}

impl From<&Uuid> for String {
    fn from(u: &Uuid) -> String {
        u.text().to_string()
    }
}

impl From<Uuid> for String {
    fn from(u: Uuid) -> String {
        u.text().to_string()
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.text(), f)
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text(), f)
    }
}

impl PartialEq for Uuid {
    fn eq(&self, other: &Uuid) -> bool {
        // A text has one form: canonical text always parses to `Canonical`.
        match (&self.0, &other.0) {
            (UuidRepr::Canonical(a), UuidRepr::Canonical(b)) => a == b,
            (UuidRepr::Other(a), UuidRepr::Other(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Uuid {}

impl Hash for Uuid {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.text().hash(state);
    }
}

impl Ord for Uuid {
    fn cmp(&self, other: &Uuid) -> Ordering {
        match (&self.0, &other.0) {
            // Hex digits in nibble order are in text order, and the hyphens stand at the same
            // places in both.
            (UuidRepr::Canonical(a), UuidRepr::Canonical(b)) => a.cmp(b),
            _ => self.text().cmp(&other.text()),
        }
    }
}

impl PartialOrd for Uuid {
    fn partial_cmp(&self, other: &Uuid) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq<str> for Uuid {
    fn eq(&self, other: &str) -> bool {
        match &self.0 {
            UuidRepr::Canonical(bytes) => parse_canonical(other).is_some_and(|o| o == *bytes),
            UuidRepr::Other(s) => **s == *other,
        }
    }
}

impl PartialEq<&str> for Uuid {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl PartialEq<String> for Uuid {
    fn eq(&self, other: &String) -> bool {
        *self == **other
    }
}

impl PartialEq<Uuid> for str {
    fn eq(&self, other: &Uuid) -> bool {
        *other == *self
    }
}

impl PartialEq<Uuid> for &str {
    fn eq(&self, other: &Uuid) -> bool {
        *other == **self
    }
}

impl PartialEq<Uuid> for String {
    fn eq(&self, other: &Uuid) -> bool {
        *other == **self
    }
}

/// Bytes a [`Name`] holds in place: ONTAP's scheduled names (`hourly.2026-12-07_0505`, 22)
/// fit.
const INLINE: usize = 22;

/// A name as ONTAP gave it, held inside the record when it is at most 22 bytes long and in a
/// block of its own otherwise; 24 bytes either way. Reads as a `str` (it derefs to one),
/// compares, orders and hashes as one.
#[derive(Clone)]
pub struct Name(NameRepr);

#[derive(Clone)]
enum NameRepr {
    /// `len` bytes of `bytes`, a whole UTF-8 string.
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    Heap(Box<str>),
}

impl Name {
    pub fn new(s: &str) -> Name {
        if s.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Name(NameRepr::Inline {
                len: s.len() as u8,
                bytes,
            })
        } else {
            Name(NameRepr::Heap(s.into()))
        }
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Copied whole from a `str` in `new`, so always UTF-8.
            NameRepr::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            NameRepr::Heap(s) => s,
        }
    }
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name::new(s)
    }
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        Name::new(&s)
    }
}

impl From<&String> for Name {
    fn from(s: &String) -> Name {
        Name::new(s)
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.as_str().to_string()
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Name {}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Name) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Name> for str {
    fn eq(&self, other: &Name) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Name> for &str {
    fn eq(&self, other: &Name) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Name> for String {
    fn eq(&self, other: &Name) -> bool {
        self == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte a uuid's text can hold, in a form that is or is not canonical.
    const ODD: &[&str] = &[
        "",
        "-",
        "1CD8A442-86D1-11E0-AE1C-123478563412",
        "1cd8a442-86d1-11e0-ae1c-12347856341",
        "1cd8a442-86d1-11e0-ae1c-1234785634123",
        "1cd8a442+86d1-11e0-ae1c-123478563412",
        "1cd8a44286d111e0ae1c123478563412",
        "{1cd8a442-86d1-11e0-ae1c-123478563412}",
        "1cd8a442-86d1-11e0-ae1c-12347856341g",
        "1cd8a442-86d1-11e0-ae1c-1234785634é",
        "g-cd8a442-86d1-11e0-ae1c-12347856341",
        "snapshot-uuid-0001",
        "1cd8a442-86d1-11e0-ae1c-123478563412 ",
        "Ω≈ç√∫˜µ≤≥÷",
    ];

    #[test]
    fn a_uuid_reads_back_as_the_text_given() {
        let canonical = [
            "1cd8a442-86d1-11e0-ae1c-123478563412",
            "00000000-0000-0000-0000-000000000000",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            "0123abcd-4567-89ef-fedc-ba9876543210",
        ];
        for s in canonical {
            let u = Uuid::new(s);
            assert!(
                matches!(u.0, UuidRepr::Canonical(_)),
                "{s} held as 16 bytes"
            );
            assert_eq!(&*u.text(), s);
            assert_eq!(u.to_string(), s);
            assert_eq!(format!("{u:?}"), format!("{s:?}"));
            assert_eq!(u, s);
            assert_eq!(u, Uuid::from(s.to_string()));
            assert_eq!(String::from(u), s);
        }
        let long = "x".repeat(100_000);
        for s in ODD.iter().copied().chain([long.as_str()]) {
            let u = Uuid::new(s);
            assert!(matches!(u.0, UuidRepr::Other(_)), "{s:?} kept as text");
            assert_eq!(&*u.text(), s);
            assert_eq!(u, s);
            assert_eq!(u.to_string(), s);
        }
        // The same uuid in upper case is a different text: kept apart, not made equal.
        let lower = Uuid::new("1cd8a442-86d1-11e0-ae1c-123478563412");
        assert_ne!(lower, Uuid::new("1CD8A442-86D1-11E0-AE1C-123478563412"));
        assert_ne!(lower, "1CD8A442-86D1-11E0-AE1C-123478563412");
        assert_ne!(lower, "1cd8a442-86d1-11e0-ae1c-123478563413");
    }

    #[test]
    fn uuids_order_and_hash_as_their_texts() {
        use std::collections::hash_map::DefaultHasher;
        let texts = [
            "1cd8a442-86d1-11e0-ae1c-123478563412",
            "1cd8a442-86d1-11e0-ae1c-12347856341a",
            "1cd8a442-86d1-11e0-ae1c-123478563419",
            "9cd8a442-86d1-11e0-ae1c-123478563412",
            "acd8a442-86d1-11e0-ae1c-123478563412",
            "1CD8A442-86D1-11E0-AE1C-123478563412",
            "1cd8a442",
            "",
            "z",
        ];
        let hash = |h: &dyn Fn(&mut DefaultHasher)| {
            let mut s = DefaultHasher::new();
            h(&mut s);
            s.finish()
        };
        for a in texts {
            for b in texts {
                assert_eq!(Uuid::new(a).cmp(&Uuid::new(b)), a.cmp(b), "{a} against {b}");
            }
            assert_eq!(
                hash(&|s| Uuid::new(a).hash(s)),
                hash(&|s| a.hash(s)),
                "{a} hashes as its text"
            );
        }
    }

    #[test]
    fn a_name_reads_back_as_the_text_given() {
        let long = "n".repeat(100_000);
        let names = [
            "",
            "hourly.2026-12-07_0505",
            "weekly.2026-12-06_0015x",
            "snapwarden.nightly.2026-12-07T0100Z",
            "é",
            "ééééééééééé",
            "éééééééééééé",
            long.as_str(),
        ];
        for s in names {
            let n = Name::new(s);
            assert_eq!(n.as_str(), s);
            assert_eq!(&*n, s);
            assert_eq!(n.to_string(), s);
            assert_eq!(format!("{n:?}"), format!("{s:?}"));
            assert_eq!(n, s);
            assert_eq!(String::from(n.clone()), s);
            assert_eq!(
                matches!(n.0, NameRepr::Inline { .. }),
                s.len() <= INLINE,
                "{s:?}"
            );
            for t in names {
                assert_eq!(n.cmp(&Name::new(t)), s.cmp(t));
            }
        }
    }

    #[test]
    fn both_are_smaller_than_a_string() {
        assert_eq!(std::mem::size_of::<Name>(), 24);
        assert_eq!(std::mem::size_of::<Uuid>(), 24);
    }
}
