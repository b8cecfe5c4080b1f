//! A message's content as a few neutral blocks, laid out once as plain text and once as
//! HTML, so both alternatives always say the same thing.

use super::escape::{html_escape, one_line};

/// One block of a message.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Block {
    /// A paragraph of prose (one line of plain text).
    Para(String),
    /// Backup codes: each on a line of its own in plain text.
    Codes(Vec<String>),
    /// What to do if the user did not expect this mail; stands out in HTML.
    Warning(String),
}

/// A message before layout.
pub(crate) struct Document {
    /// The subject line.
    pub subject: String,
    /// The body, top to bottom.
    pub blocks: Vec<Block>,
    /// The signature (the product name; none when empty).
    pub signature: String,
}

impl Document {
    /// Plain text: blocks separated by blank lines, each code alone on its line, a
    /// signature after the standard `-- ` delimiter. Every value is kept to one line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for block in &self.blocks {
            match block {
                Block::Para(p) | Block::Warning(p) => out.push_str(&one_line(p)),
                Block::Codes(codes) => {
                    let lines: Vec<String> = codes.iter().map(|c| one_line(c)).collect();
                    out.push_str(&lines.join("\n"));
                }
            }
            out.push_str("\n\n");
        }
        if self.signature.is_empty() {
            out.pop();
        } else {
            out.push_str("-- \n");
            out.push_str(&one_line(&self.signature));
            out.push('\n');
        }
        out
    }

    /// HTML: a small self-contained document with inline styles. Every piece of text
    /// is escaped here, so no template or value can inject markup.
    pub fn html(&self) -> String {
        let mut out = String::from("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>");
        out.push_str(&html_escape(&self.subject));
        out.push_str("</title>\n</head>\n<body style=\"font-family:sans-serif;line-height:1.5;color:#222\">\n");
        for block in &self.blocks {
            match block {
                Block::Para(p) => {
                    out.push_str(&format!("<p>{}</p>\n", html_escape(p)));
                }
                Block::Codes(codes) => {
                    for code in codes {
                        out.push_str(&format!(
                            "<p style=\"font-family:monospace;font-size:1.4em;letter-spacing:0.1em\"><strong>{}</strong></p>\n",
                            html_escape(code)
                        ));
                    }
                }
                Block::Warning(w) => {
                    out.push_str(&format!(
                        "<p style=\"border-left:4px solid #c00;padding-left:8px\">{}</p>\n",
                        html_escape(w)
                    ));
                }
            }
        }
        if !self.signature.is_empty() {
            out.push_str(&format!("<p style=\"color:#666\">{}</p>\n", html_escape(&self.signature)));
        }
        out.push_str("</body>\n</html>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Document {
        Document {
            subject: "Hi <you>".to_owned(),
            blocks: vec![
                Block::Para("Line one\nforged".to_owned()),
                Block::Codes(vec!["AAAA-BBBB".to_owned(), "CCCC-DDDD".to_owned()]),
                Block::Warning("Tell <b>us</b> & them".to_owned()),
            ],
            signature: "Acme".to_owned(),
        }
    }

    #[test]
    fn text_puts_each_code_on_its_own_line_and_keeps_prose_to_one_line() {
        let text = doc().text();
        assert_eq!(text, "Line one forged\n\nAAAA-BBBB\nCCCC-DDDD\n\nTell <b>us</b> & them\n\n-- \nAcme\n");
    }

    #[test]
    fn html_escapes_every_block_and_the_title() {
        let html = doc().html();
        assert!(html.contains("<title>Hi &lt;you&gt;</title>"), "{html}");
        assert!(html.contains("Tell &lt;b&gt;us&lt;/b&gt; &amp; them"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(html.contains("<strong>AAAA-BBBB</strong>") && html.contains("<strong>CCCC-DDDD</strong>"));
    }
}
