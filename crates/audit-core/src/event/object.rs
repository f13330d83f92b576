//! `previous_state`, `new_state` and `metadata`: free-form objects that
//! the log stores and hashes but does not interpret.

use std::borrow::Cow;

use crate::json::{CanonicalObject, Object};

/// A free-form object member of an event. Code builds one as a tree
/// (`Object::into`); the JSON reader keeps it as the canonical text it
/// checked, which is all that validation, sealing and storage need — the
/// tree is built only for code that walks it (personal-data paths,
/// display).
#[derive(Debug, Clone)]
pub enum JsonObject {
    /// Built in code; checked (finite numbers, depth) by validation.
    Tree(Object),
    /// Read from JSON, or validated: canonical and finite by construction.
    Canonical(CanonicalObject),
}

impl From<Object> for JsonObject {
    fn from(obj: Object) -> Self {
        JsonObject::Tree(obj)
    }
}

impl From<CanonicalObject> for JsonObject {
    fn from(obj: CanonicalObject) -> Self {
        JsonObject::Canonical(obj)
    }
}

impl JsonObject {
    /// The object as a tree (borrowed when it is one).
    pub fn to_object(&self) -> Cow<'_, Object> {
        match self {
            JsonObject::Tree(o) => Cow::Borrowed(o),
            JsonObject::Canonical(c) => Cow::Owned(c.to_object()),
        }
    }

    /// The object as a tree to edit (a canonical one becomes a tree).
    pub fn tree_mut(&mut self) -> &mut Object {
        if let JsonObject::Canonical(c) = self {
            *self = JsonObject::Tree(c.to_object());
        }
        match self {
            JsonObject::Tree(o) => o,
            JsonObject::Canonical(_) => unreachable!("made a tree above"),
        }
    }

    /// Appends the canonical form. A tree must be finite (validation
    /// checks it before anything is written).
    pub fn write_canonical(&self, out: &mut Vec<u8>) {
        match self {
            JsonObject::Tree(o) => crate::canonical::write_object(o, out),
            JsonObject::Canonical(c) => out.extend_from_slice(c.as_bytes()),
        }
    }

    /// The canonical form (borrowed when it is already canonical).
    pub fn canonical_bytes(&self) -> Cow<'_, [u8]> {
        match self {
            JsonObject::Canonical(c) => Cow::Borrowed(c.as_bytes()),
            JsonObject::Tree(_) => {
                let mut out = Vec::new();
                self.write_canonical(&mut out);
                Cow::Owned(out)
            }
        }
    }
}

/// Equal when they hold the same JSON object, whichever form each is in.
impl PartialEq for JsonObject {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (JsonObject::Tree(a), JsonObject::Tree(b)) => a == b,
            (JsonObject::Canonical(a), JsonObject::Canonical(b)) => a.as_bytes() == b.as_bytes(),
            (JsonObject::Tree(t), JsonObject::Canonical(c)) | (JsonObject::Canonical(c), JsonObject::Tree(t)) => {
                CanonicalObject::of_object(t).is_some_and(|t| t.as_bytes() == c.as_bytes())
            }
        }
    }
}
