//! One self-contained HTML report: inline CSS, pictures embedded as inline SVG, no
//! network access needed to read it. Commands build a [`Report`] from blocks
//! (headings, paragraphs, tables, figures) and write `report.html`.

use std::fmt::Write as _;

/// A piece of the report.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Heading(String),
    Paragraph(String),
    /// Name/value pairs, e.g. the run's configuration.
    KeyValues(Vec<(String, String)>),
    /// A table; cells that parse as numbers are right-aligned.
    Table {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// An inline SVG picture with a caption.
    Figure {
        svg: String,
        caption: String,
    },
    /// Preformatted text (a classification report, a command line).
    Pre(String),
}

/// A titled report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub title: String,
    pub subtitle: String,
    pub blocks: Vec<Block>,
}

impl Report {
    pub fn new(title: impl Into<String>, subtitle: impl Into<String>) -> Self {
        Report {
            title: title.into(),
            subtitle: subtitle.into(),
            blocks: Vec::new(),
        }
    }

    pub fn push(&mut self, b: Block) -> &mut Self {
        self.blocks.push(b);
        self
    }

    /// The whole page.
    pub fn to_html(&self) -> String {
        let mut h = String::with_capacity(64 * 1024);
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{}</title><style>{CSS}</style></head><body><main>\
             <h1>{}</h1><p class=\"sub\">{}</p>",
            escape(&self.title),
            escape(&self.title),
            escape(&self.subtitle)
        );
        let mut toc = Vec::new();
        let mut body = String::new();
        for b in &self.blocks {
            match b {
                Block::Heading(t) => {
                    let id = format!("s{}", toc.len() + 1);
                    let _ = write!(body, "<h2 id=\"{id}\">{}</h2>", escape(t));
                    toc.push((id, t.clone()));
                }
                Block::Paragraph(t) => {
                    let _ = write!(body, "<p>{}</p>", escape(t));
                }
                Block::KeyValues(kv) => {
                    body.push_str("<table class=\"kv\">");
                    for (k, v) in kv {
                        let _ = write!(
                            body,
                            "<tr><th>{}</th><td>{}</td></tr>",
                            escape(k),
                            escape(v)
                        );
                    }
                    body.push_str("</table>");
                }
                Block::Table { header, rows } => {
                    body.push_str("<div class=\"scroll\"><table><thead><tr>");
                    for c in header {
                        let _ = write!(body, "<th>{}</th>", escape(c));
                    }
                    body.push_str("</tr></thead><tbody>");
                    for r in rows {
                        body.push_str("<tr>");
                        for c in r {
                            let class = if looks_numeric(c) { " class=\"n\"" } else { "" };
                            let _ = write!(body, "<td{class}>{}</td>", escape(c));
                        }
                        body.push_str("</tr>");
                    }
                    body.push_str("</tbody></table></div>");
                }
                Block::Figure { svg, caption } => {
                    // The SVG comes from our own chart code, not from user input.
                    let _ = write!(
                        body,
                        "<figure>{svg}<figcaption>{}</figcaption></figure>",
                        escape(caption)
                    );
                }
                Block::Pre(t) => {
                    let _ = write!(body, "<pre>{}</pre>", escape(t));
                }
            }
        }
        if toc.len() > 1 {
            h.push_str("<nav><ol>");
            for (id, t) in &toc {
                let _ = write!(h, "<li><a href=\"#{id}\">{}</a></li>", escape(t));
            }
            h.push_str("</ol></nav>");
        }
        h.push_str(&body);
        h.push_str("</main></body></html>\n");
        h
    }
}

fn looks_numeric(s: &str) -> bool {
    let t = s.trim().trim_end_matches('%');
    !t.is_empty() && t.parse::<f64>().is_ok()
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
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

const CSS: &str = "body{font-family:system-ui,-apple-system,'DejaVu Sans',sans-serif;color:#1d2430;background:#fafbfc;margin:0}\
main{max-width:1180px;margin:0 auto;padding:24px 32px 64px}\
h1{font-size:28px;margin:8px 0 0}.sub{color:#5b6573;margin:4px 0 20px}\
h2{font-size:20px;margin:36px 0 10px;border-bottom:1px solid #dde2e8;padding-bottom:4px}\
nav ol{columns:3;font-size:14px;color:#5b6573}nav a{color:#1f5fa8;text-decoration:none}\
table{border-collapse:collapse;font-size:13px;margin:8px 0;background:#fff}\
th,td{padding:4px 10px;border-bottom:1px solid #e6e9ee;text-align:left;white-space:nowrap}\
thead th{background:#f0f3f6;position:sticky;top:0}td.n{text-align:right;font-variant-numeric:tabular-nums}\
table.kv th{color:#5b6573;font-weight:500}.scroll{overflow-x:auto;max-width:100%}\
figure{margin:16px 0;background:#fff;border:1px solid #e6e9ee;padding:8px;overflow-x:auto}\
figure svg{max-width:100%;height:auto}figcaption{font-size:13px;color:#5b6573;margin-top:4px}\
pre{background:#fff;border:1px solid #e6e9ee;padding:10px;font-size:12.5px;overflow-x:auto}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_self_contained_escaped_page() {
        let mut r = Report::new("iotids <run>", "generated data");
        r.push(Block::Heading("Data".into()))
            .push(Block::KeyValues(vec![("rows".into(), "1,229".into())]))
            .push(Block::Table {
                header: vec!["class".into(), "f1".into()],
                rows: vec![vec!["XSS & co".into(), "0.97".into()]],
            })
            .push(Block::Heading("Pictures".into()))
            .push(Block::Figure {
                svg: "<svg width=\"1\" height=\"1\"></svg>".into(),
                caption: "ROC".into(),
            });
        let h = r.to_html();
        assert!(h.starts_with("<!DOCTYPE html>"));
        assert!(h.contains("<title>iotids &lt;run&gt;</title>"));
        assert!(h.contains("<td>XSS &amp; co</td><td class=\"n\">0.97</td>"));
        assert!(h.contains("<svg width=\"1\" height=\"1\"></svg>"));
        assert!(h.contains("<a href=\"#s2\">Pictures</a>"));
        assert!(
            !h.contains("http://") && !h.contains("https://"),
            "no external resources"
        );
    }
}
