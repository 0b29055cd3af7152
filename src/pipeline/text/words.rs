//! Word tokens for term statistics: lowercased content words, without
//! the stopwords of `stopwords.txt`.

use std::collections::HashSet;
use std::sync::LazyLock;

/// English function words that carry no topic, left out of term
/// statistics; a set, since every token of every chunk is looked up.
static STOPWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("stopwords.txt")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
});

/// True for a word left out of term statistics: a stopword, or too short
/// to carry a topic.
pub(crate) fn is_stopword(word: &str) -> bool {
    word.chars().count() < 3 || STOPWORDS.contains(word)
}

/// The content words of `text`, lowercased, in order: runs of letters and
/// digits (with inner apostrophes and hyphens), without a trailing `'s`,
/// keeping those with a letter that are no stopword.
pub(crate) fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for raw in text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’' || c == '-')) {
        let raw = raw.trim_matches(|c: char| !c.is_alphanumeric());
        if raw.is_empty() {
            continue;
        }
        // Hyphenated compounds count as their parts ("well-known" → known).
        for part in raw.split('-') {
            let part = part.trim_matches(|c: char| !c.is_alphanumeric());
            let mut word = part.to_lowercase().replace('’', "'");
            if let Some(stem) = word.strip_suffix("'s") {
                word = stem.to_owned();
            }
            if word.contains('\'') || !word.chars().any(char::is_alphabetic) || is_stopword(&word) {
                continue;
            }
            out.push(word);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_lowercase_content_words() {
        assert_eq!(
            tokens("The Telescope's lens, and the well-known Moon! 42 x"),
            vec!["telescope", "lens", "known", "moon"]
        );
    }

    #[test]
    fn stopwords_come_from_the_list() {
        assert!(STOPWORDS.len() > 200);
        for word in ["about", "whereas", "amp", "nbsp", "is", "of"] {
            assert!(is_stopword(word), "{word}");
        }
        assert!(!is_stopword("telescope"));
    }
}
