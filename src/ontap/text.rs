//! `Text`: an immutable string that a listing shares instead of copying — the volume, SVM,
//! comment, label and lock owners repeated by thousands of snapshots — and [`Interner`], which
//! hands out one `Text` per distinct value while a listing is read.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// An immutable, cheaply cloned string (a shared `str`). Reads like `&str` (it derefs to one)
/// and compares with `str`, `&str` and `String`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Text(Arc<str>);

impl Text {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text(Arc::from(s))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text(Arc::from(s))
    }
}

impl From<&String> for Text {
    fn from(s: &String) -> Text {
        Text(Arc::from(s.as_str()))
    }
}

impl From<Text> for String {
    fn from(t: Text) -> String {
        t.0.to_string()
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        *self == *other.0
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        **self == *other.0
    }
}

impl PartialEq<Text> for String {
    fn eq(&self, other: &Text) -> bool {
        **self == *other.0
    }
}

/// One [`Text`] per distinct value seen: a listing read through it holds each repeated value
/// once. Lives as long as one read.
#[derive(Debug, Default)]
pub struct Interner {
    seen: HashSet<Text>,
}

impl Interner {
    /// The `Text` for `s`: the one handed out before for the same value, or a new one.
    pub fn get(&mut self, s: &str) -> Text {
        if let Some(t) = self.seen.get(s) {
            return t.clone();
        }
        let t = Text::from(s);
        self.seen.insert(t.clone());
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interned_values_are_shared_and_compare_as_strings() {
        let mut i = Interner::default();
        let (a, b, c) = (i.get("svm1"), i.get("svm1"), i.get("svm2"));
        assert!(Arc::ptr_eq(&a.0, &b.0), "the same value is handed out once");
        assert!(!Arc::ptr_eq(&a.0, &c.0));
        assert_eq!(a, "svm1");
        assert_eq!(a, "svm1".to_string());
        let owned = String::from("svm2");
        assert!("svm2" == c && owned == c);
        assert_eq!(format!("{a} {a:?}"), "svm1 \"svm1\"");
        assert_eq!(String::from(c), "svm2");
    }
}
