//! Terms for topic statistics: the words of a text that can name a topic,
//! each with its Snowball (Porter 2) English stem to group inflections
//! (`job` and `jobs` are one term) and its surface word to show.
//!
//! Left out before stemming: links, e-mail addresses, `@` mentions, file
//! paths, dot files and dotted names (`redis.io`, `e.g.`), shell variables,
//! Markdown code (fenced blocks and inline spans), words with a digit or an underscore
//! (numbers, versions, identifiers), words shorter than three letters,
//! contractions, the English stop words of the Stopwords ISO list (crate
//! `stop-words`; also every word with the stem of one, so `values` goes with
//! `value`), and a few URL and markup leftovers no stop-word list has
//! (`https`, `www`, `nbsp`, ...).
//!
//! Two terms that follow each other directly (nothing left out between
//! them, no punctuation) form a [`Word::joined`] pair, from which callers
//! count two-word phrases.

use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;

use rust_stemmers::{Algorithm, Stemmer};

/// The English Snowball stemmer; stateless, so one serves every thread.
static STEMMER: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::English));

/// URL pieces and markup leftovers that are no English stop words, so the
/// list lacks them; links themselves are cut before tokenising.
const NOT_PROSE: &[&str] = &[
    "http", "https", "www", "com", "org", "net", "html", "htm", "href", "src", "img", "png", "svg",
    "gif", "jpg", "nbsp", "amp", "quot", "apos",
];

/// Stems of the stop words and of [`NOT_PROSE`], looked up for every word.
static STOP_STEMS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let list = stop_words::lookup(stop_words::Language::English).unwrap_or_default();
    list.iter()
        .chain(NOT_PROSE)
        .map(|word| stem(word))
        .collect()
});

/// A term of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    /// Its stem, what terms are grouped and matched by.
    pub(crate) stem: String,
    /// The word as written, lowercased.
    pub(crate) surface: String,
    /// Whether it directly follows the previous term (a phrase may span them).
    pub(crate) joined: bool,
}

/// The stem of a lowercase word.
pub(crate) fn stem(word: &str) -> String {
    STEMMER.stem(word).into_owned()
}

/// The terms of `text`, in order; see the module documentation.
pub(crate) fn words(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut joined = false;
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") || line.trim_start().starts_with("~~~") {
            in_code = !in_code;
            joined = false;
            continue;
        }
        if in_code {
            continue;
        }
        // Between paired backticks is inline code, no prose.
        let spans: Vec<&str> = line.split('`').collect();
        for (k, span) in spans.iter().enumerate() {
            if k % 2 == 1 && k + 1 < spans.len() {
                joined = false;
                continue;
            }
            push_prose(&mut out, span, &mut joined);
        }
        // A line break inside a paragraph joins; a heading or list item
        // line ends with no punctuation, but that is rare enough to accept.
    }
    out
}

/// Pushes the terms of a stretch of prose.
fn push_prose(out: &mut Vec<Word>, prose: &str, joined: &mut bool) {
    for piece in prose.split_whitespace() {
        let (kept, cut) = before_link(piece);
        // A separator (or the piece's start after a cut) precedes every
        // run but the first.
        for (i, run) in kept.split(|c: char| !is_word_char(c)).enumerate() {
            if i > 0 {
                *joined = false;
            }
            push_run(out, run, joined);
        }
        if cut {
            *joined = false;
        }
    }
}

/// Letters, digits, and what may sit inside a word: apostrophes, hyphens
/// and underscores (an underscore marks an identifier, left out later).
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '\'' | '’' | '-' | '_')
}

/// Pushes the terms of one run of word characters.
fn push_run(out: &mut Vec<Word>, run: &str, joined: &mut bool) {
    let run = run.trim_matches(|c: char| !c.is_alphanumeric());
    if run.is_empty() {
        return;
    }
    if run.contains('_') {
        *joined = false;
        return;
    }
    // Hyphenated compounds count as their parts ("well-known" → known).
    for part in run.split('-') {
        let mut word = part
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase()
            .replace('’', "'");
        if let Some(stripped) = word.strip_suffix("'s") {
            word = stripped.to_owned();
        }
        let is_word = !word.contains('\'')
            && word.chars().all(char::is_alphabetic)
            && word.chars().count() >= 3;
        let stem = stem(&word);
        if !is_word || STOP_STEMS.contains(&stem) || STOP_STEMS.contains(&word) {
            *joined = false;
            continue;
        }
        out.push(Word {
            stem,
            surface: word,
            joined: *joined,
        });
        *joined = true;
    }
}

/// The part of a whitespace-free `piece` before anything that is no prose
/// (a link, address, path or dotted name), and whether something was cut.
fn before_link(piece: &str) -> (&str, bool) {
    let (piece, cut) = match piece.find("://") {
        Some(at) => {
            // Back over the scheme ("https", "git+ssh").
            let start = piece[..at]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-')))
                .map_or(0, |i| i + 1);
            (&piece[..start], true)
        }
        None => (piece, false),
    };
    let bare = piece.trim_start_matches(['(', '[', '<', '"', '\'', '*', '`', '“', '‘']);
    let lower = bare.to_ascii_lowercase();
    let dotted = bare
        .char_indices()
        .filter(|&(_, c)| matches!(c, '.' | '/' | '\\'))
        .any(|(i, c)| {
            let before = bare[..i].chars().next_back();
            let after = bare[i + c.len_utf8()..].chars().next();
            before.is_some_and(char::is_alphanumeric) && after.is_some_and(char::is_alphanumeric)
        });
    let not_prose = lower.starts_with("www.")
        || bare.contains('@')
        || bare.starts_with(['/', '~', '.', '$', '%'])
        || dotted;
    if not_prose { ("", true) } else { (piece, cut) }
}

/// Counts of the surface words (or phrases) of each term, to show a term
/// as it is most often written.
#[derive(Debug, Default)]
pub(crate) struct Surfaces {
    counts: BTreeMap<String, BTreeMap<String, u32>>,
}

impl Surfaces {
    /// Counts `surface` as a way `key` is written.
    pub(crate) fn add(&mut self, key: &str, surface: &str) {
        *self
            .counts
            .entry(key.to_owned())
            .or_default()
            .entry(surface.to_owned())
            .or_default() += 1;
    }

    /// How `key` is written most often (the shorter, then the first in
    /// alphabetical order, on a tie); the key itself if it was never seen.
    pub(crate) fn best(&self, key: &str) -> String {
        self.counts
            .get(key)
            .and_then(|surfaces| {
                surfaces.iter().max_by(|a, b| {
                    a.1.cmp(b.1)
                        .then_with(|| b.0.len().cmp(&a.0.len()))
                        .then_with(|| b.0.cmp(a.0))
                })
            })
            .map_or_else(|| key.to_owned(), |(surface, _)| surface.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// True for a lowercase word that is no term: a stop word, a URL or
    /// markup leftover, or an inflection of one.
    fn is_stop_word(word: &str) -> bool {
        words(word).is_empty()
    }

    fn surfaces(text: &str) -> Vec<String> {
        words(text).into_iter().map(|w| w.surface).collect()
    }

    #[test]
    fn terms_are_lowercase_content_words() {
        assert_eq!(
            surfaces("The Telescope's lens, and the well-known Moon! 42 x v7 don't max_memory"),
            vec!["telescope", "lens", "moon"]
        );
    }

    #[test]
    fn links_addresses_paths_and_code_are_no_terms() {
        let text = "See [the docs](https://redis.io/topics/intro) or www.example.org, \
                    by [@someone](https://github.com/someone)) `load_dotenv(str)` \
                    mail me@example.com, thanks @someone; edit /etc/redis/redis.conf or \
                    redis.conf, set $DOMAIN and .env, e.g. this.\n\
                    ```python\nimport dotenv\n```\nGraceful shutdown&nbsp;here";
        assert_eq!(
            surfaces(text),
            vec!["docs", "mail", "edit", "set", "graceful", "shutdown"]
        );
    }

    #[test]
    fn stop_words_come_from_the_list_with_their_inflections() {
        for word in [
            "about", "whereas", "inside", "the", "value", "values", "https", "nbsp",
        ] {
            assert!(is_stop_word(word), "{word}");
        }
        for word in ["telescope", "job", "jobs", "redis", "memory"] {
            assert!(!is_stop_word(word), "{word}");
        }
    }

    #[test]
    fn inflections_share_a_stem_and_show_the_most_frequent_word() {
        let found = words("Jobs run. A job retries; jobs wait. Categories and a category.");
        let stems: Vec<&str> = found.iter().map(|w| w.stem.as_str()).collect();
        assert_eq!(stems[0], stems[1]);
        let mut surfaces = Surfaces::default();
        for word in &found {
            surfaces.add(&word.stem, &word.surface);
        }
        assert_eq!(surfaces.best(&stem("job")), "jobs");
        assert_eq!(surfaces.best(&stem("category")), "category");
    }

    #[test]
    fn only_adjacent_terms_are_joined() {
        let joined: Vec<(String, bool)> = words("Redis Cluster and data structures, memory usage")
            .into_iter()
            .map(|w| (w.surface, w.joined))
            .collect();
        assert_eq!(
            joined,
            vec![
                ("redis".into(), false),
                ("cluster".into(), true),
                ("data".into(), false),
                ("structures".into(), true),
                ("memory".into(), false),
                ("usage".into(), true),
            ]
        );
    }
}
