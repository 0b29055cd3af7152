//! Sentences for evidence: rule-based boundaries at end punctuation,
//! blank lines and Markdown headings.

/// The sentences of `text`, trimmed, with inner whitespace collapsed. A
/// sentence ends at `.`, `!` or `?` (and any closing quotes or brackets)
/// followed by whitespace and a character that is not lowercase, at a blank
/// line, and around a line that is a Markdown heading.
pub(crate) fn sentences(text: &str) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
