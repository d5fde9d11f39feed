//! JSON as the core reads and writes it, by concern:
//!
//! - [`scan`](mod@scan): the validating scanner, its flat tape of byte spans and its
//!   [`Hooks`], called as it reads;
//! - [`text`]: the text of scanned strings and keys (unescaping);
//! - [`write`](mod@write): JSON string literals out (quoting for bodies and messages);
//! - [`bytes`]: byte tricks a word (eight bytes) at a time, kept apart from the code
//!   that uses them, as httparse and serde_json keep theirs.

mod bytes;
mod scan;
mod text;
mod write;

pub(crate) use bytes::{same_bytes, word};
#[cfg(test)]
pub(crate) use scan::scan;
pub(crate) use scan::{Error, Hooks, Kind, Node, scan_with};
pub(crate) use text::{node_text, quoted_text, string_text};
pub(crate) use write::{Quoted, push_string, push_string_bytes};
