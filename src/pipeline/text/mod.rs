//! Text handling shared by the pipeline steps, one tool per file: word
//! tokens for term statistics (`words.rs`, with its word list in
//! `stopwords.txt`), sentences for evidence (`sentences.rs`) and HTML to
//! text (`html.rs`). Rule-based on purpose: deterministic, and good enough
//! for English prose.

mod html;
mod sentences;
mod words;

pub use html::html_to_text;
pub use sentences::sentences;
pub use words::{is_stopword, tokens};
