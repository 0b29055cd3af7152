//! Text handling shared by the pipeline steps: HTML to text, word tokens
//! for term statistics, and sentences for evidence. Small and rule-based on
//! purpose: deterministic, dependency-free, good enough for English prose.

/// English function words that carry no topic, left out of term statistics.
const STOPWORDS: &[&str] = &[
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "almost",
    "along",
    "also",
    "although",
    "always",
    "among",
    "and",
    "another",
    "any",
    "are",
    "around",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "can",
    "cannot",
    "could",
    "did",
    "does",
    "doing",
    "done",
    "down",
    "during",
    "each",
    "either",
    "else",
    "enough",
    "even",
    "ever",
    "every",
    "few",
    "for",
    "from",
    "further",
    "get",
    "gets",
    "got",
    "had",
    "has",
    "have",
    "having",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "however",
    "into",
    "its",
    "itself",
    "just",
    "last",
    "least",
    "less",
    "like",
    "made",
    "make",
    "makes",
    "many",
    "may",
    "might",
    "more",
    "most",
    "much",
    "must",
    "near",
    "need",
    "never",
    "new",
    "next",
    "nor",
    "not",
    "now",
    "off",
    "often",
    "once",
    "one",
    "only",
    "onto",
    "other",
    "others",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "per",
    "perhaps",
    "quite",
    "rather",
    "really",
    "said",
    "same",
    "say",
    "says",
    "see",
    "seem",
    "seems",
    "several",
    "shall",
    "she",
    "should",
    "since",
    "some",
    "something",
    "still",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "therefore",
    "these",
    "they",
    "thing",
    "things",
    "this",
    "those",
    "though",
    "three",
    "through",
    "thus",
    "together",
    "too",
    "toward",
    "towards",
    "two",
    "under",
    "until",
    "upon",
    "use",
    "used",
    "uses",
    "using",
    "usually",
    "very",
    "was",
    "way",
    "ways",
    "were",
    "what",
    "whatever",
    "when",
    "where",
    "whether",
    "which",
    "while",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "within",
    "without",
    "would",
    "yet",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "able",
    "across",
    "already",
    "became",
    "become",
    "becomes",
    "come",
    "comes",
    "first",
    "give",
    "gives",
    "go",
    "goes",
    "good",
    "great",
    "keep",
    "keeps",
    "know",
    "let",
    "long",
    "look",
    "looks",
    "lot",
    "lots",
    "mean",
    "means",
    "part",
    "put",
    "take",
    "takes",
    "taken",
    "tell",
    "well",
    "went",
    "whole",
    "yes",
    "whereas",
    "amp",
    "nbsp",
];

/// True for a word left out of term statistics: a stopword, or too short
/// to carry a topic.
pub fn is_stopword(word: &str) -> bool {
    word.chars().count() < 3 || STOPWORDS.contains(&word)
}

/// The content words of `text`, lowercased, in order: runs of letters and
/// digits (with inner apostrophes and hyphens), without a trailing `'s`,
/// keeping those with a letter that are no stopword.
pub fn tokens(text: &str) -> Vec<String> {
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

/// The sentences of `text`, trimmed, with inner whitespace collapsed. A
/// sentence ends at `.`, `!` or `?` (and any closing quotes or brackets)
/// followed by whitespace and a character that is not lowercase, at a blank
/// line, and around a line that is a Markdown heading.
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for block in blocks(text) {
        let mut start = 0;
        let chars: Vec<(usize, char)> = block.char_indices().collect();
        let mut i = 0;
        while i < chars.len() {
            let (_, c) = chars[i];
            if matches!(c, '.' | '!' | '?') {
                let mut j = i + 1;
                while j < chars.len() && matches!(chars[j].1, '"' | '\'' | ')' | ']' | '”' | '’')
                {
                    j += 1;
                }
                let mut k = j;
                while k < chars.len() && chars[k].1.is_whitespace() {
                    k += 1;
                }
                if k > j && (k == chars.len() || !chars[k].1.is_lowercase()) {
                    let end = chars.get(j).map_or(block.len(), |&(at, _)| at);
                    push_sentence(&mut out, &block[start..end]);
                    start = chars.get(k).map_or(block.len(), |&(at, _)| at);
                    i = k;
                    continue;
                }
            }
            i += 1;
        }
        push_sentence(&mut out, &block[start..]);
    }
    out
}

/// Splits at blank lines and isolates Markdown heading lines.
fn blocks(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        let line_start = offset;
        offset += line.len();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            if let Some(s) = start.take() {
                out.push(&text[s..line_start]);
            }
            if !trimmed.is_empty() {
                out.push(line);
            }
        } else if start.is_none() {
            start = Some(line_start);
        }
    }
    if let Some(s) = start {
        out.push(&text[s..]);
    }
    out
}

fn push_sentence(out: &mut Vec<String>, raw: &str) {
    let sentence = raw
        .trim()
        .trim_start_matches(['#', '>', '*', '-'])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if sentence.chars().any(char::is_alphanumeric) {
        out.push(sentence);
    }
}

/// Elements whose content is not text to read.
const SKIPPED_ELEMENTS: &[&str] = &["script", "style", "noscript", "template", "svg", "head"];

/// Elements that start a new paragraph.
const BLOCK_ELEMENTS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "dd",
    "div",
    "dl",
    "dt",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "td",
    "th",
    "title",
    "tr",
    "ul",
];

/// The readable text of an HTML document: tags removed, `script`, `style`
/// and `head` content dropped, block elements separated by blank lines,
/// `<br>` as a line break, common entities decoded, spaces collapsed.
pub fn html_to_text(html: &str) -> String {
    let mut raw = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        raw.push_str(&rest[..open]);
        rest = &rest[open..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        if !rest[1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '!') {
            // A lone `<` in text, not a tag.
            raw.push('<');
            rest = &rest[1..];
            continue;
        }
        let end = tag_end(rest);
        let tag = rest[1..end].trim_end_matches('>');
        rest = &rest[end..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if !closing && SKIPPED_ELEMENTS.contains(&name.as_str()) && !tag.ends_with('/') {
            rest = skip_element(rest, &name);
            continue;
        }
        if name == "br" {
            raw.push('\n');
        } else if BLOCK_ELEMENTS.contains(&name.as_str()) {
            raw.push_str("\n\n");
        }
    }
    raw.push_str(rest);
    tidy(&decode_entities(&raw))
}

/// The byte length of the tag at the start of `s` (which starts with `<`),
/// up to and including its `>`, honouring quoted attribute values.
fn tag_end(s: &str) -> usize {
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => return i + 1,
            (None, _) => {}
        }
    }
    s.len()
}

/// `s` after the closing tag of element `name` (case-insensitive).
fn skip_element<'a>(s: &'a str, name: &str) -> &'a str {
    let closing = format!("</{name}");
    let lower = s.to_ascii_lowercase();
    match lower.find(&closing) {
        Some(at) => {
            let after = &s[at..];
            &after[tag_end(after)..]
        }
        None => "",
    }
}

/// Decodes the character references HTML text commonly carries; unknown
/// ones stay as written.
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let after = &rest[1..];
        let decoded = after
            .char_indices()
            .take(12)
            .find(|&(_, c)| c == ';')
            .and_then(|(semi, _)| entity_char(&after[..semi]).map(|c| (c, semi + 2)));
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity_char(entity: &str) -> Option<char> {
    if let Some(num) = entity.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code);
    }
    Some(match entity {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "mdash" => '—',
        "ndash" => '–',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "copy" => '©',
        "eacute" => 'é',
        "deg" => '°',
        _ => return None,
    })
}

/// Collapses spaces within lines, trims lines, and keeps at most one blank
/// line between paragraphs.
fn tidy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank_run = 0;
    for line in s.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        blank_run = 0;
        out.push_str(&line);
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
    fn sentences_end_at_punctuation_and_blank_lines() {
        let text = "# Title\nFirst one. Second one? e.g. not split.\nNext (one) \"quoted.\" then\nsame line\n\nNew block";
        assert_eq!(
            sentences(text),
            vec![
                "Title",
                "First one.",
                "Second one? e.g. not split.",
                "Next (one) \"quoted.\" then same line",
                "New block"
            ]
        );
    }

    #[test]
    fn html_becomes_paragraphs() {
        let html = "<html><head><title>T</title><style>p{}</style></head><body>\
            <h1>Head&amp;line</h1><!-- note --><p class=\"a>b\">One <b>bold</b> word.<br>Next</p>\
            <script>var x = '<p>';</script><p>Caf&eacute; &#233; &#x41; 1 < 2 &bogus;</p></body></html>";
        assert_eq!(
            html_to_text(html),
            "Head&line\n\nOne bold word.\nNext\n\nCafé é A 1 < 2 &bogus;"
        );
    }
}
