//! Making interpolated values safe: HTML escaping and single-line plain text.

/// Escapes `s` for HTML text and quoted attribute values: `& < > " '`. For an
/// application's own [`Renderer`](crate::mail::Renderer) or pages.
///
/// ```
/// assert_eq!(twofactor::mail::html_escape("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
/// ```
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A value that must stay on one line of plain text (a username, a location label):
/// control characters (line breaks, tabs, escapes) become spaces, so a value cannot
/// forge extra lines such as a fake code.
pub(crate) fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_five_html_specials() {
        assert_eq!(
            html_escape(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn leaves_plain_and_non_ascii_text_alone() {
        assert_eq!(html_escape("Zoë 東京 42"), "Zoë 東京 42");
        assert_eq!(html_escape(""), "");
    }

    #[test]
    fn escaping_is_not_idempotent_so_entities_are_escaped_once_more() {
        assert_eq!(html_escape("&amp;"), "&amp;amp;");
    }

    #[test]
    fn one_line_replaces_control_characters() {
        assert_eq!(one_line("Firefox\r\n\nCODE-1234\tx\u{1b}[0m"), "Firefox   CODE-1234 x [0m");
        assert_eq!(one_line("Zoë on Linux"), "Zoë on Linux");
    }
}
