//! Typed fields: protocol inputs and form fields share one definition, so a protocol's inputs
//! can be filled in by a person exactly like a form.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Text.
    #[default]
    String,
    /// A signed 64-bit integer.
    Int,
    /// A decimal number.
    Number,
    /// `true` or `false`.
    Bool,
    /// One of `values`.
    Enum,
    /// A duration (`30s`, `1h30m`).
    Duration,
    /// A list of `items`.
    List,
    /// A map of `fields`.
    Object,
}

impl FieldType {
    /// The type's name as written.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Int => "int",
            FieldType::Number => "number",
            FieldType::Bool => "bool",
            FieldType::Enum => "enum",
            FieldType::Duration => "duration",
            FieldType::List => "list",
            FieldType::Object => "object",
        }
    }
}

/// A value written in YAML (a default, for instance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Literal {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A decimal number.
    Number(f64),
    /// Text.
    Str(String),
    /// A list.
    List(Vec<Literal>),
    /// A map.
    Map(BTreeMap<String, Literal>),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Int(i) => write!(f, "{i}"),
            Literal::Number(n) => write!(f, "{n}"),
            Literal::Str(s) => f.write_str(s),
            Literal::List(_) | Literal::Map(_) => {
                f.write_str(&serde_json::to_string(self).unwrap_or_else(|_| "<value>".to_owned()))
            }
        }
    }
}

/// A typed field with its constraints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// The type; `string` when omitted.
    #[serde(default, rename = "type")]
    pub kind: FieldType,
    /// Short label for forms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// What it means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A heading that groups fields in a form ("Budget constraints").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Whether a value must be given (ignored when a default exists).
    #[serde(default)]
    pub required: bool,
    /// The value used when none is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Literal>,
    /// Allowed values of an `enum`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Smallest allowed `int`/`number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest allowed `int`/`number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// A regular expression a `string` must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Fewest items of a `list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_items: Option<u32>,
    /// Most items of a `list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u32>,
    /// The item type of a `list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Box<FieldSpec>>,
    /// The fields of an `object`, in display order.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub fields: IndexMap<String, FieldSpec>,
    /// Never echoed in logs, chat or status output.
    #[serde(default)]
    pub secret: bool,
}
