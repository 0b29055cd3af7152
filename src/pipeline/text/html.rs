//! HTML to readable text: tags removed, non-text elements dropped,
//! blocks as paragraphs, character references decoded.

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
/// `<br>` as a line break, character references decoded (every named one
/// of HTML5 and numeric ones, by `html-escape`; unknown ones stay as
/// written), spaces collapsed.
pub(crate) fn html_to_text(html: &str) -> String {
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
    tidy(&html_escape::decode_html_entities(&raw))
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
    fn html_becomes_paragraphs() {
        let html = "<html><head><title>T</title><style>p{}</style></head><body>\
            <h1>Head&amp;line</h1><!-- note --><p class=\"a>b\">One <b>bold</b> word.<br>Next</p>\
            <script>var x = '<p>';</script><p>Caf&eacute; &#233; &#x41; 1 < 2 &bogus;</p></body></html>";
        assert_eq!(
            html_to_text(html),
            "Head&line\n\nOne bold word.\nNext\n\nCafé é A 1 < 2 &bogus;"
        );
    }

    #[test]
    fn every_named_and_numeric_entity_is_decoded() {
        let html =
            "<p>Gr&uuml;&szlig;e aus M&uuml;nchen, caf&eacute; &#x263A; &#9731; &hellip;</p>";
        assert_eq!(html_to_text(html), "Grüße aus München, café ☺ ☃ …");
    }
}
