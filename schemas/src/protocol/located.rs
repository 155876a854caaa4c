//! A YAML document as a tree of located nodes, so checks made on the typed model can point at
//! the line and column of what they complain about: a check names a path (`steps.2.needs.0`),
//! the tree turns it into a location.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};
use std::fmt;

/// A node with where it was written.
#[derive(Debug, Clone)]
pub struct Node {
    /// Where the value starts.
    pub at: Location,
    /// The value.
    pub kind: NodeKind,
}

/// What a node holds.
#[derive(Debug, Clone)]
pub enum NodeKind {
    /// A mapping, in file order, with each key's location.
    Map(Vec<(String, Location, Node)>),
    /// A sequence.
    Seq(Vec<Node>),
    /// Any scalar.
    Scalar,
}

/// One step of a path into the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

impl From<&str> for Seg {
    fn from(key: &str) -> Self {
        Seg::Key(key.to_owned())
    }
}

impl From<usize> for Seg {
    fn from(index: usize) -> Self {
        Seg::Index(index)
    }
}

impl Node {
    /// Parses the document (the caller has already parsed it into the model, so this succeeds).
    pub fn parse(text: &str) -> Option<Node> {
        serde_saphyr::from_str::<Spanned<NodeKind>>(text).ok().map(|s| Node { at: s.referenced, kind: s.value })
    }

    /// The location of the node at `path`, or of its deepest existing ancestor. A key segment
    /// that is the last one points at the key itself rather than its value when `key` is set.
    pub fn locate(&self, path: &[Seg]) -> Location {
        let mut node = self;
        for seg in path {
            let next = match (&node.kind, seg) {
                (NodeKind::Map(entries), Seg::Key(key)) => entries.iter().find(|(k, _, _)| k == key).map(|(_, _, n)| n),
                (NodeKind::Seq(items), Seg::Index(i)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node.at
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = NodeKind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeKind, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value = map.next_value::<Spanned<NodeKind>>()?;
            entries.push((key.value.0, key.referenced, Node { at: value.referenced, kind: value.value }));
        }
        Ok(NodeKind::Map(entries))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeKind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<NodeKind>>()? {
            items.push(Node { at: item.referenced, kind: item.value });
        }
        Ok(NodeKind::Seq(items))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar)
    }
    fn visit_unit<E: de::Error>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar)
    }
    fn visit_none<E: de::Error>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar)
    }
}

impl<'de> Deserialize<'de> for NodeKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

/// A mapping key of any scalar type, as text.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_to_lines_and_columns() {
        let text = "id: p\nsteps:\n  - id: a\n    needs: [x, y]\n  - id: b\n";
        let tree = Node::parse(text).unwrap_or_else(|| unreachable!("parses"));
        let at = tree.locate(&["steps".into(), 0.into(), "needs".into(), 1.into()]);
        assert_eq!((at.line(), at.column()), (4, 16));
        let at = tree.locate(&["steps".into(), 1.into(), "id".into()]);
        assert_eq!((at.line(), at.column()), (5, 9));
        let missing = tree.locate(&["steps".into(), 1.into(), "nope".into()]);
        assert_eq!((missing.line(), missing.column()), (5, 5));
    }
}
