//! The set value type.

/// A set value (to be filled in by its family).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Set {}

impl Set {
    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        "listpack"
    }
    /// Heap bytes held beyond the struct itself.
    pub fn mem_usage(&self) -> usize {
        0
    }
    pub fn len(&self) -> usize {
        0
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
