//! Text out of the files a sync reads: the searchable text, its blocks (paragraphs and
//! headings, which the [`Chunker`](super::Chunker) packs) and a title.
//!
//! Plain text, Markdown and reStructuredText are indexed as they are (block offsets are byte
//! offsets into the file); HTML goes through html5ever's tokenizer: entities decoded, `script`
//! / `style` / `template` / `noscript` dropped, one paragraph per block element, whitespace
//! collapsed except in `pre` (block offsets are then into the extracted text).

use std::cell::RefCell;
use std::path::Path;

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{BufferQueue, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts};

/// The file formats a sync reads, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Format {
    /// `.txt`: paragraphs separated by blank lines.
    Text,
    /// `.md`, `.markdown`: paragraphs, ATX (`# `) and setext headings, fenced code kept whole.
    Markdown,
    /// `.rst`: paragraphs and underlined (or over- and underlined) section titles.
    Rst,
    /// `.html`, `.htm`.
    Html,
}

/// The extensions a sync reads (see [`Format::of`]), for messages.
pub const EXTENSIONS: &str = ".txt, .md, .markdown, .rst, .html, .htm";

impl Format {
    /// The format of a file by its extension (case-insensitive); `None` for others.
    ///
    /// ```
    /// use std::path::Path;
    /// use sieve_engine::documents::Format;
    ///
    /// assert_eq!(Format::of(Path::new("notes/Intro.MD")), Some(Format::Markdown));
    /// assert_eq!(Format::of(Path::new("scan.pdf")), None);
    /// ```
    pub fn of(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "txt" => Some(Format::Text),
            "md" | "markdown" => Some(Format::Markdown),
            "rst" => Some(Format::Rst),
            "html" | "htm" => Some(Format::Html),
            _ => None,
        }
    }
}

/// A paragraph or heading: a byte range of [`Extracted::text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// A section heading: the chunker starts a new chunk here.
    pub heading: bool,
}

/// A file's searchable text.
#[derive(Debug, Clone, PartialEq)]
pub struct Extracted {
    /// The text chunks are cut from.
    pub text: String,
    /// Its paragraphs and headings, in order, not overlapping.
    pub blocks: Vec<Block>,
    /// The document's title, when it declares one.
    pub title: Option<String>,
}

/// Extracts the text of a file's contents.
///
/// ```
/// use sieve_engine::documents::{Format, extract};
///
/// let page = extract(Format::Html, "<title>Tea</title><h1>Brewing</h1><p>Steep for 3&nbsp;minutes.</p>");
/// assert_eq!(page.title.as_deref(), Some("Tea"));
/// assert_eq!(page.text, "Brewing\n\nSteep for 3 minutes.");
/// assert!(page.blocks[0].heading && !page.blocks[1].heading);
/// ```
pub fn extract(format: Format, source: &str) -> Extracted {
    match format {
        Format::Html => html(source),
        Format::Text | Format::Markdown | Format::Rst => lines(format, source),
    }
}

/// Paragraphs of a line-based format: runs of non-blank lines, headings on their own.
fn lines(format: Format, source: &str) -> Extracted {
    let mut blocks: Vec<Block> = Vec::new();
    let mut title = None;
    // Markdown headings (level, text): the title is the first level-1 heading, else the first.
    let mut headings: Vec<(usize, String)> = Vec::new();
    // Lines of the paragraph being read: (start, end) byte ranges without the line ending.
    let mut current: Vec<(usize, usize)> = Vec::new();
    let mut fence: Option<String> = None;
    let mut offset = 0;
    let close = |current: &mut Vec<(usize, usize)>, blocks: &mut Vec<Block>, heading: bool| {
        if let (Some(first), Some(last)) = (current.first(), current.last()) {
            blocks.push(Block {
                start: first.0,
                end: last.1,
                heading,
            });
        }
        current.clear();
    };
    for raw in source.split_inclusive('\n') {
        let start = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        let end = start + line.len();
        let trimmed = line.trim();
        if format == Format::Markdown {
            if let Some(marker) = &fence {
                current.push((start, end));
                if trimmed.starts_with(marker.as_str()) {
                    fence = None;
                    close(&mut current, &mut blocks, false);
                }
                continue;
            }
            if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
                close(&mut current, &mut blocks, false);
                fence = Some(trimmed[..3].to_string());
                current.push((start, end));
                continue;
            }
            if let Some(text) = atx_heading(trimmed) {
                close(&mut current, &mut blocks, false);
                current.push((start, end));
                close(&mut current, &mut blocks, true);
                let level = trimmed.chars().take_while(|&c| c == '#').count();
                headings.push((level, text.to_string()));
                continue;
            }
            if current.len() == 1
                && is_underline(trimmed, &['=', '-'])
                && (trimmed.starts_with('=') || trimmed.len() >= 2)
            {
                let (s, e) = current[0];
                let level = if trimmed.starts_with('=') { 1 } else { 2 };
                headings.push((level, source[s..e].trim().to_string()));
                current.push((start, end));
                close(&mut current, &mut blocks, true);
                continue;
            }
        }
        if trimmed.is_empty() {
            close(&mut current, &mut blocks, false);
            continue;
        }
        current.push((start, end));
        if format == Format::Rst && is_underline(trimmed, RST_ADORNMENTS) && (2..=3).contains(&current.len()) {
            let (s, e) = current[current.len() - 2];
            let heading = source[s..e].trim();
            let overline = current.len() == 3 && source[current[0].0..current[0].1].trim() == trimmed;
            if (current.len() == 2 || overline)
                && !heading.is_empty()
                && trimmed.chars().count() >= heading.chars().count()
            {
                title = title.or_else(|| Some(heading.to_string()));
                close(&mut current, &mut blocks, true);
            }
        }
    }
    close(&mut current, &mut blocks, false);
    if format == Format::Markdown {
        let h1 = headings.iter().find(|(level, _)| *level == 1);
        title = h1
            .or(headings.first())
            .map(|(_, t)| t.clone())
            .filter(|t| !t.is_empty());
    }
    Extracted {
        text: source.to_string(),
        blocks,
        title,
    }
}

const RST_ADORNMENTS: &[char] = &[
    '=', '-', '~', '^', '"', '\'', '`', '#', '*', '+', '<', '>', ':', '.', '_',
];

/// A line made of one adornment character repeated.
fn is_underline(line: &str, chars: &[char]) -> bool {
    let mut it = line.chars();
    match it.next() {
        Some(c) if chars.contains(&c) => it.all(|d| d == c),
        _ => false,
    }
}

/// The text of a Markdown ATX heading (`## Text ##`), if the line is one.
fn atx_heading(line: &str) -> Option<&str> {
    let hashes = line.chars().take_while(|&c| c == '#').count();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let rest = &line[hashes..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    Some(rest.trim().trim_end_matches('#').trim())
}

/// Elements whose content is not text a reader sees.
const SKIPPED: &[&str] = &["script", "style", "template", "noscript", "svg", "math"];
/// Elements that end a paragraph.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "fieldset",
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
    "html",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tr",
    "ul",
];

#[derive(Default)]
struct HtmlState {
    text: String,
    blocks: Vec<Block>,
    block_start: usize,
    heading: Option<String>,
    pending_space: bool,
    skip: Vec<String>,
    pre: usize,
    in_title: bool,
    title: String,
    first_h1: Option<String>,
}

impl HtmlState {
    fn push_text(&mut self, s: &str) {
        for c in s.chars() {
            if self.pre > 0 {
                self.text.push(c);
            } else if c.is_whitespace() {
                self.pending_space = true;
            } else {
                if self.pending_space && self.text.len() > self.block_start {
                    self.text.push(' ');
                }
                self.pending_space = false;
                self.text.push(c);
            }
        }
    }

    /// Ends the current paragraph.
    fn close_block(&mut self) {
        let body = &self.text[self.block_start..];
        let trimmed = body.trim_end();
        if !trimmed.trim_start().is_empty() {
            let leading = body.len() - body.trim_start().len();
            let end = self.block_start + trimmed.len();
            self.text.truncate(end);
            let is_h1 = self.heading.as_deref() == Some("h1");
            self.blocks.push(Block {
                start: self.block_start + leading,
                end,
                heading: self.heading.is_some(),
            });
            if is_h1 && self.first_h1.is_none() {
                self.first_h1 = Some(self.text[self.block_start + leading..end].to_string());
            }
            self.text.push_str("\n\n");
        } else {
            self.text.truncate(self.block_start);
        }
        self.block_start = self.text.len();
        self.pending_space = false;
    }

    fn tag(&mut self, kind: TagKind, name: &str, self_closing: bool) -> TokenSinkResult<()> {
        if let Some(open) = self.skip.last() {
            if kind == TagKind::EndTag && open == name {
                self.skip.pop();
            }
            return TokenSinkResult::Continue;
        }
        match (kind, name) {
            (TagKind::StartTag, "title") => {
                self.in_title = true;
                return TokenSinkResult::RawData(RawKind::Rcdata);
            }
            (TagKind::EndTag, "title") => self.in_title = false,
            (TagKind::StartTag, _) if SKIPPED.contains(&name) && !self_closing => {
                self.skip.push(name.to_string());
                return match name {
                    "script" => TokenSinkResult::RawData(RawKind::ScriptData),
                    "style" | "noscript" => TokenSinkResult::RawData(RawKind::Rawtext),
                    _ => TokenSinkResult::Continue,
                };
            }
            (_, "br") => {
                if self.pre > 0 {
                    self.text.push('\n');
                } else {
                    self.pending_space = true;
                }
            }
            (_, "td" | "th") => self.pending_space = true,
            (_, _) if BLOCKS.contains(&name) => {
                self.close_block();
                let heading = matches!(name, "h1" | "h2" | "h3" | "h4" | "h5" | "h6");
                match kind {
                    TagKind::StartTag if heading => self.heading = Some(name.to_string()),
                    TagKind::EndTag if heading => self.heading = None,
                    _ => {}
                }
                if name == "pre" {
                    match kind {
                        TagKind::StartTag => self.pre += 1,
                        TagKind::EndTag => self.pre = self.pre.saturating_sub(1),
                    }
                }
            }
            _ => {}
        }
        TokenSinkResult::Continue
    }
}

struct HtmlSink(RefCell<HtmlState>);

impl TokenSink for HtmlSink {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        let mut state = self.0.borrow_mut();
        match token {
            Token::TagToken(tag) => state.tag(tag.kind, &tag.name, tag.self_closing),
            Token::CharacterTokens(s) => {
                if state.in_title {
                    state.title.push_str(&s);
                } else if state.skip.is_empty() {
                    state.push_text(&s);
                }
                TokenSinkResult::Continue
            }
            _ => TokenSinkResult::Continue,
        }
    }
}

fn html(source: &str) -> Extracted {
    let tokenizer = Tokenizer::new(HtmlSink(RefCell::new(HtmlState::default())), TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(source));
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    let mut state = tokenizer.sink.0.into_inner();
    state.close_block();
    let text = state.text.trim_end().to_string();
    let title = state.title.split_whitespace().collect::<Vec<_>>().join(" ");
    let title = Some(title).filter(|t| !t.is_empty()).or(state.first_h1);
    Extracted {
        text,
        blocks: state.blocks,
        title,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_texts(e: &Extracted) -> Vec<(&str, bool)> {
        e.blocks.iter().map(|b| (&e.text[b.start..b.end], b.heading)).collect()
    }

    #[test]
    fn markdown_paragraphs_headings_and_fences() {
        let src = "# Title\n\nFirst para\nstill first.\n\n## Part\nSecond.\n\n```\ncode\n\nmore code\n```\nSetext\n---\nlast\n";
        let e = extract(Format::Markdown, src);
        assert_eq!(e.title.as_deref(), Some("Title"));
        assert_eq!(
            block_texts(&e),
            [
                ("# Title", true),
                ("First para\nstill first.", false),
                ("## Part", true),
                ("Second.", false),
                ("```\ncode\n\nmore code\n```", false),
                ("Setext\n---", true),
                ("last", false),
            ]
        );
        assert_eq!(e.text, src, "markdown is indexed as written");
    }

    #[test]
    fn rst_titles() {
        let src = "=====\nGuide\n=====\n\nIntro text.\n\nInstall\n-------\n\nRun it.\n";
        let e = extract(Format::Rst, src);
        assert_eq!(e.title.as_deref(), Some("Guide"));
        let blocks = block_texts(&e);
        assert_eq!(blocks[0], ("=====\nGuide\n=====", true));
        assert_eq!(blocks[2], ("Install\n-------", true));
        assert_eq!(blocks.len(), 4);
    }

    #[test]
    fn html_text_entities_and_skipped_elements() {
        let src = r#"<!doctype html><html><head><title>My &amp; Page</title><style>p { x: "<p>" }</style>
            <script>if (a < b) { document.write("<p>no</p>"); }</script></head>
            <body><h1>Heading</h1><p>Fish &amp; chips&nbsp;&lt;3 <b>bold</b>
            text</p><ul><li>one</li><li>two</li></ul><pre>a  b
c</pre></body></html>"#;
        let e = extract(Format::Html, src);
        assert_eq!(e.title.as_deref(), Some("My & Page"));
        assert_eq!(
            block_texts(&e),
            [
                ("Heading", true),
                ("Fish & chips <3 bold text", false),
                ("one", false),
                ("two", false),
                ("a  b\nc", false),
            ]
        );
        assert!(!e.text.contains("document.write") && !e.text.contains("x:"));
    }

    #[test]
    fn html_without_title_uses_the_first_h1() {
        let e = extract(Format::Html, "<h2>sub</h2><h1>Main</h1><p>x</p>");
        assert_eq!(e.title.as_deref(), Some("Main"));
    }
}
