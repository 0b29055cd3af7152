//! Text handling shared by the pipeline steps, one tool per file: word
//! tokens for term statistics (`words.rs`, with its word list in
//! `stopwords.txt`), sentences for evidence (`sentences.rs`) and HTML to
//! text (`html.rs`). Rule-based on purpose: deterministic, and good enough
//! for English prose.

mod html;
mod sentences;
mod words;

pub(crate) use html::html_to_text;
pub(crate) use sentences::sentences;
pub(crate) use words::tokens;
