//! Text handling shared by the pipeline steps, one tool per file: terms
//! for topic statistics, stemmed and without stop words (`terms.rs`),
//! sentences for evidence (`sentences.rs`) and HTML to text (`html.rs`).
//! Rule-based on purpose: deterministic, and good enough for English prose.

mod html;
mod sentences;
mod terms;

pub(crate) use html::html_to_text;
pub(crate) use sentences::sentences;
pub(crate) use terms::{Surfaces, words};
